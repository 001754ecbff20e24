"""The events app's Redis outputs and their readers: each stream's capped events stream (with
the event-streams set), its current action and its statistics. Keys in `harclip.io.keys`; errors
mapped by `harclip.io.store.redis_errors` like every Redis call."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import redis.asyncio as aioredis

from harclip.config import RedisSettings
from harclip.errors import MessageError
from harclip.io.keys import redis_keys
from harclip.io.store import redis_errors
from harclip.messages.event import Event, StreamAction, StreamStats

EVENT_FIELD = b"e"  # the Event JSON of a Redis events entry
_ID_FIELD = b"id"  # its event_id (the dedup check reads only this)
_DEDUP_WINDOW = 32  # newest entries of a stream checked for the same event_id

# XADD the event unless one of the stream's newest entries has its event_id (a replayed or
# re-emitted event): KEYS events, event-streams  ARGV event_id, json, maxlen, window, stream, ms
_ADD_EVENT = """
local newest = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', tonumber(ARGV[4]))
for _, entry in ipairs(newest) do
  local f = entry[2]
  for i = 1, #f, 2 do
    if f[i] == 'id' and f[i + 1] == ARGV[1] then return 0 end
  end
end
redis.call('XADD', KEYS[1], 'MAXLEN', '~', tonumber(ARGV[3]), '*', 'id', ARGV[1], 'e', ARGV[2])
redis.call('ZADD', KEYS[2], 'GT', tonumber(ARGV[6]), ARGV[5])
return 1
"""

# Set the action unless the stored one comes from a later event (order: emitted_at, then "down"
# after "active" at the same time). KEYS action  ARGV json, emitted_at, rank
_SET_ACTION = """
local cur = redis.call('GET', KEYS[1])
if cur then
  local c = cjson.decode(cur)
  local at, rank = tonumber(ARGV[2]), tonumber(ARGV[3])
  local crank = 0
  if c.state == 'down' then crank = 1 end
  if c.updated_at > at or (c.updated_at == at and crank > rank) then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1])
return 1
"""


def action_rank(action: StreamAction) -> int:
    """Tie-break of two actions set at the same time: down wins over active."""
    return 1 if action.state == "down" else 0


def dedup_id(e: Event) -> str:
    """What a Redis events entry is deduplicated by: the event_id, or for the copy of an event
    that the evidence step republishes (`evidence` set, an update of the first) the event_id
    with `/evidence`, so the update is added once after the first entry. Readers that show a
    stream's events keep the newest entry per event_id."""
    return e.event_id if e.evidence is None else f"{e.event_id}/evidence"


@redis_errors("write")
async def write_outputs(
    r: aioredis.Redis,
    s: RedisSettings,
    events: Sequence[Event],
    actions: Mapping[str, StreamAction],
    *,
    maxlen: int,
) -> None:
    """One round trip: each event into its stream's capped events stream (skipped when one of
    the newest entries has its `dedup_id`), then each stream's action (unless a later one is
    stored). `SinkUnavailable` / `SinkRefused` as every Redis write."""
    if not events and not actions:
        return
    k = redis_keys(s)
    pipe = r.pipeline(transaction=False)
    for e in events:
        pipe.eval(
            _ADD_EVENT, 2, k.events(e.stream_id), k.event_streams,
            dedup_id(e), e.to_json(), maxlen, _DEDUP_WINDOW, e.stream_id, e.emitted_at,
        )  # fmt: skip
    for sid, a in actions.items():
        pipe.eval(_SET_ACTION, 1, k.action(sid), a.model_dump_json(), a.updated_at, action_rank(a))
    await pipe.execute()


@redis_errors("write")
async def write_stats(r: aioredis.Redis, s: RedisSettings, stats: Sequence[StreamStats]) -> None:
    """Replace each stream's statistics document (one round trip)."""
    if not stats:
        return
    k = redis_keys(s)
    pipe = r.pipeline(transaction=False)
    for st in stats:
        pipe.set(k.stats(st.stream_id), st.model_dump_json())
    await pipe.execute()


@redis_errors("read")
async def read_action(r: aioredis.Redis, s: RedisSettings, stream_id: str) -> StreamAction | None:
    """The stream's current action, or None if the app has not seen the stream."""
    raw = await r.get(redis_keys(s).action(stream_id))
    return None if raw is None else StreamAction.model_validate_json(raw)


@redis_errors("read")
async def read_stats(r: aioredis.Redis, s: RedisSettings, stream_id: str) -> StreamStats | None:
    """The stream's statistics, or None before its first segment."""
    raw = await r.get(redis_keys(s).stats(stream_id))
    return None if raw is None else StreamStats.model_validate_json(raw)


@redis_errors("read")
async def read_events(
    r: aioredis.Redis,
    s: RedisSettings,
    stream_ids: Sequence[str],
    after: Mapping[str, str] | None = None,
    *,
    count: int = 100,
    block_ms: int | None = None,
) -> list[tuple[str, Event]]:
    """Events added to the streams' Redis event streams after the given entry ids ("0-0" or
    missing: from the start of the cap), oldest first per stream, as (entry id, Event). Resume
    by passing, per stream, the last entry id received. `block_ms` waits for new entries."""
    if not stream_ids:
        return []
    k = redis_keys(s)
    positions = after or {}
    request: dict[Any, Any] = {k.events(sid): positions.get(sid, "0-0") for sid in stream_ids}
    reply: Any = await r.xread(request, count=count, block=block_ms)
    out: list[tuple[str, Event]] = []
    for _key, entries in reply or []:
        for entry_id, fields in entries:
            raw = fields.get(EVENT_FIELD)
            if raw is None:
                raise MessageError(f"events entry {entry_id!r} has no field {EVENT_FIELD!r}")
            out.append((entry_id.decode(), Event.from_json(raw)))
    return out


@redis_errors("read")
async def list_event_streams(
    r: aioredis.Redis, s: RedisSettings, *, limit: int = 1000
) -> list[str]:
    """The streams the events app wrote events for, newest first."""
    rows: Any = await r.zrange(redis_keys(s).event_streams, 0, limit - 1, desc=True)
    return [sid.decode() for sid in rows]
