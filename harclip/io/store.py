"""Redis as the live store: the latest Prediction and frame of each stream, a capped Redis Stream
of recent Predictions per stream (read with a resume position), and the set of streams by
last-seen time; the Redis client and the one Redis error mapping. Keys in `harclip.io.keys`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import (
    BusyLoadingError,
    ClusterDownError,
    MasterDownError,
    OutOfMemoryError,
    ReadOnlyError,
    RedisError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from harclip.config import RedisSettings
from harclip.errors import MessageError
from harclip.io.errors import Fault, mapped
from harclip.io.keys import redis_keys
from harclip.messages.prediction import Prediction

log = logging.getLogger(__name__)

_SOCKET_TIMEOUT_S = 10.0  # one command, seconds; blocking reads must stay below it
MAX_BLOCK_MS = 5000  # longest `block_ms` of `read_recent`, ms
RECENT_FIELD = b"p"  # the one field of a recent-stream entry: the Prediction JSON

# Sets `latest` (and the frame, with its TTL) only if this prediction is not older than the stored
# one, so that a batch that arrives late never moves `latest` backwards. Order: (captured_at, seq).
# KEYS: latest, frame   ARGV: prediction JSON, captured_at, seq, frame bytes ("" = none), ttl s
_SET_LATEST = """
local cur = redis.call('GET', KEYS[1])
if cur then
  local c = cjson.decode(cur)
  local at, seq = tonumber(ARGV[2]), tonumber(ARGV[3])
  if c.captured_at > at or (c.captured_at == at and c.seq > seq) then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1])
if ARGV[4] ~= '' then redis.call('SET', KEYS[2], ARGV[4], 'EX', ARGV[5]) end
return 1
"""


def make_redis(s: RedisSettings) -> aioredis.Redis:
    """An asyncio Redis client on a lazy pool (nothing connects before the first command) of at
    most `max_connections`: a caller beyond that waits up to `pool_timeout_s` for a free one
    (redis-py's default pool refuses at once with "Too many connections", which a burst of
    WebSocket subscribers or requests turned into 503s)."""
    pool = aioredis.BlockingConnectionPool.from_url(
        s.url,
        max_connections=s.max_connections,
        timeout=s.pool_timeout_s,
        socket_timeout=_SOCKET_TIMEOUT_S,
        socket_connect_timeout=5.0,
        health_check_interval=30,
        decode_responses=False,
        **({"password": s.password.get_secret_value()} if s.password.get_secret_value() else {}),
    )
    return aioredis.Redis.from_pool(pool)


# Replies that mean "not now" (out of memory under `maxmemory`, a replica during failover, a
# dataset still loading, a busy script, a cluster resharding or without a master): retried,
# never dead-lettered.
_TRANSIENT_REPLIES = ("OOM", "READONLY", "LOADING", "BUSY", "TRYAGAIN", "MASTERDOWN",
                      "CLUSTERDOWN", "NOREPLICAS")  # fmt: skip


_TRANSIENT_CLASSES = (OutOfMemoryError, ReadOnlyError, BusyLoadingError, TryAgainError,
                      MasterDownError, ClusterDownError)  # fmt: skip


def _classify(e: BaseException) -> tuple[Fault, str] | None:
    """redis-py's failures: no answer or a "not now" reply is transient; any other refused
    command is permanent."""
    if isinstance(e, RedisConnectionError | RedisTimeoutError | OSError):
        return "transient", str(e)
    if isinstance(e, RedisError):
        if _not_now(e):
            return "transient", f"not now: {e}"
        return "permanent", f"refused: {e}"
    return None


def _not_now(e: RedisError) -> bool:
    # redis-py turns some reply codes into classes (and strips the code), keeps others in the
    # message, and a pipeline prefixes the message with "Command # N (...) of pipeline caused
    # error: ".
    if isinstance(e, _TRANSIENT_CLASSES):
        return True
    reply = str(e).rpartition("caused error: ")[2].upper()
    return reply.startswith(_TRANSIENT_REPLIES) or getattr(e, "status_code", None) in (
        _TRANSIENT_REPLIES
    )


redis_errors = mapped("Redis", _classify)  # the one Redis error mapping (also harclip.io.events)


@redis_errors("read")
async def ping(r: aioredis.Redis) -> None:
    """Raise `ReadUnavailable` unless Redis answers PING."""
    await r.ping()


@redis_errors("write")
async def write_predictions(
    r: aioredis.Redis,
    s: RedisSettings,
    preds: Sequence[Prediction],
    frames: Mapping[str, bytes] | None = None,
    *,
    docs: Sequence[bytes] | None = None,
) -> None:
    """Write one batch in a single round trip (pipeline, no transaction). `docs`, if given, are
    the predictions' JSON already made (`Prediction.to_json()`, in the order of `preds`).

    Per prediction: an entry in the stream's capped `recent` stream. Per stream: `latest` := the
    newest prediction of the batch unless the stored one is newer; `streams` score := the newest
    `captured_at` (never lowered); the frame (from `frames`, keyed by frame_id) of that newest
    prediction, if given, with a TTL of `s.frame_ttl_s` seconds. Idempotent for `latest`, `frame`
    and `streams`; a replayed batch adds its entries to `recent` again (the cap bounds it).
    """
    if docs is not None and len(docs) != len(preds):
        raise ValueError(f"{len(docs)} docs for {len(preds)} predictions")
    if not preds:
        return
    k = redis_keys(s)
    newest: dict[str, tuple[Prediction, bytes]] = {}
    pipe = r.pipeline(transaction=False)
    for i, p in enumerate(preds):
        doc = docs[i] if docs is not None else p.to_json()
        pipe.xadd(
            k.recent(p.stream_id), {RECENT_FIELD: doc}, maxlen=s.recent_maxlen, approximate=True
        )
        cur = newest.get(p.stream_id)
        if cur is None or (p.captured_at, p.seq) >= (cur[0].captured_at, cur[0].seq):
            newest[p.stream_id] = (p, doc)
    for sid, (p, doc) in newest.items():
        frame = (frames or {}).get(p.frame_id, b"")
        pipe.eval(
            _SET_LATEST, 2, k.latest(sid), k.frame(sid),
            doc, p.captured_at, p.seq, frame, s.frame_ttl_s,
        )  # fmt: skip
    pipe.zadd(k.streams, {sid: p.captured_at for sid, (p, _) in newest.items()}, gt=True)
    await pipe.execute()


@redis_errors("read")
async def read_latest(r: aioredis.Redis, s: RedisSettings, stream_id: str) -> Prediction | None:
    """The latest Prediction of `stream_id`, or None if there is none."""
    raw = await r.get(redis_keys(s).latest(stream_id))
    return None if raw is None else Prediction.from_json(raw)


@redis_errors("read")
async def read_frame(r: aioredis.Redis, s: RedisSettings, stream_id: str) -> bytes | None:
    """The latest frame (encoded image) of `stream_id`, or None once its TTL has passed."""
    raw: Any = await r.get(redis_keys(s).frame(stream_id))
    return None if raw is None else bytes(raw)


@redis_errors("read")
async def list_streams(
    r: aioredis.Redis, s: RedisSettings, *, since_ms: int | None = None, limit: int = 1000
) -> list[tuple[str, int]]:
    """(stream id, last-seen ms since epoch), most recently seen first; only those seen at or
    after `since_ms` when given."""
    rows: Any = await r.zrange(
        redis_keys(s).streams, "+inf", "-inf" if since_ms is None else since_ms,
        desc=True, byscore=True, offset=0, num=limit, withscores=True,
    )  # fmt: skip
    return [(sid.decode(), int(score)) for sid, score in rows]


@redis_errors("read")
async def tail_positions(
    r: aioredis.Redis, s: RedisSettings, stream_ids: Sequence[str]
) -> dict[str, str]:
    """The id of the last entry in each stream's `recent` ("0-0" if empty): a resume position
    for `read_recent` that yields only what is added from now on."""
    k = redis_keys(s)
    pipe = r.pipeline(transaction=False)
    for sid in stream_ids:
        pipe.xrevrange(k.recent(sid), count=1)
    rows: Any = await pipe.execute()
    return {
        sid: (row[0][0].decode() if row else "0-0")
        for sid, row in zip(stream_ids, rows, strict=True)
    }


@redis_errors("read")
async def read_recent(
    r: aioredis.Redis,
    s: RedisSettings,
    stream_ids: Sequence[str] | None = None,
    after: Mapping[str, str] | None = None,
    *,
    count: int = 100,
    block_ms: int | None = None,
) -> list[tuple[str, Prediction]]:
    """Predictions added to the `recent` streams after the given positions, oldest first per
    stream, as (entry id, Prediction).

    `stream_ids` None: every stream in `streams`. `after` maps stream id -> entry id; a stream
    without one is read from the start of its cap ("0-0"; use `tail_positions` for "from now").
    The caller resumes by passing, per stream, the last entry id it got. At most `count` entries
    per stream. `block_ms` (1..MAX_BLOCK_MS) waits that long for new entries when there are none;
    None returns at once.
    """
    if block_ms is not None and not 0 < block_ms <= MAX_BLOCK_MS:
        raise ValueError(f"block_ms must be in 1..{MAX_BLOCK_MS} or None, got {block_ms}")
    k = redis_keys(s)
    if stream_ids is None:
        members: Any = await r.zrange(k.streams, 0, -1)
        stream_ids = [sid.decode() for sid in members]
    if not stream_ids:
        return []
    positions = after or {}
    request: dict[Any, Any] = {k.recent(sid): positions.get(sid, "0-0") for sid in stream_ids}
    reply: Any = await r.xread(request, count=count, block=block_ms)
    out: list[tuple[str, Prediction]] = []
    for _key, entries in reply or []:
        for entry_id, fields in entries:
            raw = fields.get(RECENT_FIELD)
            if raw is None:
                raise MessageError(f"recent entry {entry_id!r} has no field {RECENT_FIELD!r}")
            out.append((entry_id.decode(), Prediction.from_json(raw)))
    return out


@redis_errors("read")
async def read_entries(
    r: aioredis.Redis,
    after: Mapping[str, str],
    field: bytes,
    *,
    count: int = 100,
    block_ms: int | None = None,
) -> list[tuple[str, str, bytes]]:
    """(key, entry id, the raw value of `field`) of the entries of Redis Streams after the given
    positions (key -> entry id), oldest first per key, at most `count` per key; `block_ms` waits
    for new entries when there are none. Nothing is parsed: a caller that only forwards the
    JSON (the API's live feeds) serialises it once for every subscriber. An entry without
    `field` is skipped with a warning."""
    if not after:
        return []
    request: dict[Any, Any] = dict(after)
    reply: Any = await r.xread(request, count=count, block=block_ms)
    out: list[tuple[str, str, bytes]] = []
    for key, entries in reply or []:
        name = key.decode()
        for entry_id, fields in entries:
            raw = fields.get(field)
            if raw is None:  # not ours: skipped (a reader must never stall on one entry)
                log.warning("skipped entry %r of %s: no field %r", entry_id, name, field)
                continue
            out.append((name, entry_id.decode(), raw))
    return out


@redis_errors("read")
async def last_entry_ids(r: aioredis.Redis, stream_keys: Sequence[str]) -> dict[str, str]:
    """The id of the last entry of each Redis Stream ("0-0" when empty or missing)."""
    pipe = r.pipeline(transaction=False)
    for key in stream_keys:
        pipe.xrevrange(key, count=1)
    rows: Any = await pipe.execute()
    return {
        key: (row[0][0].decode() if row else "0-0")
        for key, row in zip(stream_keys, rows, strict=True)
    }
