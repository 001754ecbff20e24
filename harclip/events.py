"""The events contract shared by the events app (`stream/`) and its readers (the API, the UI):
the `harclip.event/1` Event, its deterministic id, what the app keeps in Redis per stream (current
action, capped event stream, statistics) and how to read it back.

Alert rules (their YAML, validation and the `harclip.control` record) live in `harclip.rules`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import redis.asyncio as aioredis
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from harclip.config import RedisSettings
from harclip.errors import MessageError
from harclip.io.store import redis_errors
from harclip.messages import ModelRef

EVENT_SCHEMA = "harclip.event/1"

EventType = Literal["segment.start", "segment.end", "alert", "stream.down", "stream.up"]
EVENT_TYPES: tuple[EventType, ...] = (
    "segment.start", "segment.end", "alert", "stream.down", "stream.up",
)  # fmt: skip
Severity = Literal["info", "warning", "critical"]


def event_id(stream_id: str, type_: EventType, seq: int, rule: str | None = None) -> str:
    """The id of an event: 32 hex digits, a hash of (stream, type, starting seq, rule).

    The same event computed twice (a replay, a restarted app) gets the same id, so Elasticsearch
    (`_id`) and the Redis event stream keep one copy. The starting seq is the segment's first seq
    for `segment.start`/`segment.end`, the seq of the prediction that fired an alert (with the
    rule's name), the last seq before a `stream.down`, the first seq after a `stream.up`.
    """
    raw = f"{stream_id}\x1f{type_}\x1f{seq}\x1f{rule or ''}".encode()
    return hashlib.blake2b(raw, digest_size=16).hexdigest()


class Event(BaseModel):
    """What the events app says about a stream (see docs/events.md for the exact semantics).

    Times are `captured_at` of predictions (ms since epoch, UTC); `emitted_at` is the app's wall
    clock when it emitted the event and is not part of the event's identity.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    schema_: str = Field(EVENT_SCHEMA, alias="schema")
    event_id: str
    type: EventType
    stream_id: str
    label: str | None = None
    start: int | None = Field(None, description="captured_at where it starts, ms")
    end: int | None = Field(None, description="captured_at where it ends (exclusive), ms")
    first_seq: int | None = None
    last_seq: int | None = None
    frames: int = 0
    score_mean: float | None = Field(None, description="mean smoothed score of `label`")
    score_max: float | None = Field(None, description="max smoothed score of `label`")
    rule: str | None = None
    severity: Severity | None = None
    model: ModelRef | None = None
    emitted_at: int = Field(0, description="wall clock of the app when emitted, ms")

    def to_json(self) -> bytes:
        return self.model_dump_json(by_alias=True).encode()

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True)

    @classmethod
    def from_json(cls, raw: bytes | str) -> Event:
        """Parse and check an Event; `MessageError` naming the first bad field."""
        try:
            e = cls.model_validate_json(raw)
        except ValidationError as err:
            first = err.errors()[0]
            loc = ".".join(str(x) for x in first["loc"])
            raise MessageError(f"invalid Event: {loc}: {first['msg']}") from None
        if e.schema_ != EVENT_SCHEMA:
            raise MessageError(f"unsupported schema {e.schema_!r} (expected {EVENT_SCHEMA!r})")
        return e


class StreamAction(BaseModel):
    """A stream's current action (`harclip:stream:{id}:action`): the label of its open segment,
    or `state` "down" (with label None) once the stream went quiet."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    stream_id: str
    state: Literal["active", "down"]
    label: str | None = None
    since: int | None = Field(None, description="captured_at where the segment started, ms")
    seq: int | None = Field(None, description="the newest seq the setting event covers")
    event_id: str = Field(description="the event that set it")
    score: float | None = Field(None, description="the segment's mean smoothed score so far")
    model: ModelRef | None = None
    updated_at: int = Field(description="emitted_at of that event (wall clock of the app, ms)")


class WindowStats(BaseModel):
    """Statistics of one time window [start, end) of capture time (ms since epoch)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    start: int
    end: int
    seconds: dict[str, float] = Field(default_factory=dict, description="time in each action")
    segments: dict[str, int] = Field(default_factory=dict, description="segments started")


class StreamStats(BaseModel):
    """Per-stream statistics (`harclip:stream:{id}:stats`): the 1-minute tumbling windows of the
    last hour (newest first) and the rolling hour ending with the newest minute."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    stream_id: str
    minutes: list[WindowStats]
    hour: WindowStats
    updated_at: int = Field(0, description="wall clock of the app, ms")


# ----------------------------------------------------------------------------- Redis


@dataclass(frozen=True, slots=True)
class EventKeys:
    """Redis keys written by the events app, under the same prefix as `harclip.io.store`."""

    prefix: str = "harclip"

    def action(self, stream_id: str) -> str:
        return f"{self.prefix}:stream:{stream_id}:action"

    def events(self, stream_id: str) -> str:
        return f"{self.prefix}:stream:{stream_id}:events"

    def stats(self, stream_id: str) -> str:
        return f"{self.prefix}:stream:{stream_id}:stats"

    @property
    def event_streams(self) -> str:
        """Sorted set: stream id -> emitted_at (ms) of its newest event."""
        return f"{self.prefix}:event-streams"

    def stream_of(self, events_key: str) -> str:
        """The stream id inside an `events(...)` key."""
        head, tail = f"{self.prefix}:stream:", ":events"
        if not (events_key.startswith(head) and events_key.endswith(tail)):
            raise ValueError(f"not an events-stream key: {events_key!r}")
        return events_key[len(head) : -len(tail)]


def event_keys(s: RedisSettings) -> EventKeys:
    return EventKeys(s.key_prefix)


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


def action_of(e: Event) -> StreamAction | None:
    """The action an event sets: segment.start (its label), stream.up (active, no label yet),
    stream.down (down); None for the others."""
    if e.type == "segment.start":
        return StreamAction(stream_id=e.stream_id, state="active", label=e.label, since=e.start,
                            seq=e.last_seq, event_id=e.event_id, score=e.score_mean,
                            model=e.model, updated_at=e.emitted_at)  # fmt: skip
    if e.type in ("stream.up", "stream.down"):
        state: Literal["active", "down"] = "active" if e.type == "stream.up" else "down"
        return StreamAction(stream_id=e.stream_id, state=state, since=e.start,
                            seq=e.last_seq, event_id=e.event_id, model=e.model,
                            updated_at=e.emitted_at)  # fmt: skip
    return None


def action_rank(action: StreamAction) -> int:
    """Tie-break of two actions set at the same time: down wins over active."""
    return 1 if action.state == "down" else 0


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
    the newest entries has its event_id), then each stream's action (unless a later one is
    stored). `SinkUnavailable` / `SinkRefused` as every Redis write."""
    if not events and not actions:
        return
    k = event_keys(s)
    pipe = r.pipeline(transaction=False)
    for e in events:
        pipe.eval(
            _ADD_EVENT, 2, k.events(e.stream_id), k.event_streams,
            e.event_id, e.to_json(), maxlen, _DEDUP_WINDOW, e.stream_id, e.emitted_at,
        )  # fmt: skip
    for sid, a in actions.items():
        pipe.eval(_SET_ACTION, 1, k.action(sid), a.model_dump_json(), a.updated_at, action_rank(a))
    await pipe.execute()


@redis_errors("write")
async def write_stats(r: aioredis.Redis, s: RedisSettings, stats: Sequence[StreamStats]) -> None:
    """Replace each stream's statistics document (one round trip)."""
    if not stats:
        return
    k = event_keys(s)
    pipe = r.pipeline(transaction=False)
    for st in stats:
        pipe.set(k.stats(st.stream_id), st.model_dump_json())
    await pipe.execute()


@redis_errors("read")
async def read_action(r: aioredis.Redis, s: RedisSettings, stream_id: str) -> StreamAction | None:
    """The stream's current action, or None if the app has not seen the stream."""
    raw = await r.get(event_keys(s).action(stream_id))
    return None if raw is None else StreamAction.model_validate_json(raw)


@redis_errors("read")
async def read_stats(r: aioredis.Redis, s: RedisSettings, stream_id: str) -> StreamStats | None:
    """The stream's statistics, or None before its first segment."""
    raw = await r.get(event_keys(s).stats(stream_id))
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
    k = event_keys(s)
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
    rows: Any = await r.zrange(event_keys(s).event_streams, 0, limit - 1, desc=True)
    return [sid.decode() for sid in rows]
