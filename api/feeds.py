"""Live feeds for WebSocket subscribers, shared: one reader per kind of feed (predictions from each
stream's `recent` Redis Stream, events from each stream's `events` Redis Stream) reads every
stream once and serialises each entry once, for all subscribers (the JSON stored in Redis is
forwarded as it is, never parsed and re-encoded per client).

A subscriber that resumes from a position first catches up on its own (reads after its positions
until it reaches the feed), while the feed already queues what it reads for it; the overlap is
removed by entry id, so nothing is lost or sent twice. Each subscriber has a bounded outbox: a
slow client loses its oldest undelivered messages, counted and reported to it (`dropped`).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import orjson
from redis.asyncio import Redis

from harclip.errors import HarclipError
from harclip.io import store
from harclip.messages import now_ms
from harclip.retry import Attempts, Backoff
from harclip.wire import ApiError, Dropped, Heartbeat

log = logging.getLogger(__name__)

_READ_BLOCK_MS = 1000  # one feed read waits at most this long, ms
_READ_COUNT = 500  # entries per stream per read
_RELIST_S = 1.0  # how often the feed looks for new streams, seconds
_RETRY = Backoff(0.5, 5.0)  # after a failed read: first and longest pause, seconds
Positions = dict[str, str]


def _entry_key(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


@dataclass(frozen=True)
class Source:
    """What a feed reads: `kind` names it in metrics ("subscribe", "events"); `message` the
    WebSocket message type and `payload` its field ("prediction" / "event")."""

    kind: str
    message: str
    payload: str
    field: bytes  # the field of a Redis Stream entry that holds the JSON
    key_of: Callable[[str], str]  # stream id -> Redis Stream key
    stream_of: Callable[[str], str]  # Redis Stream key -> stream id
    list_streams: Callable[[Redis], Awaitable[list[str]]]

    def text(self, stream_id: str, entry_id: str, raw: bytes) -> str:
        """The WebSocket message of one entry (the stored JSON embedded as it is)."""
        doc = {"type": self.message, "stream_id": stream_id, "id": entry_id,
               self.payload: orjson.Fragment(raw)}  # fmt: skip
        return orjson.dumps(doc).decode()


class Outbox:
    """A bounded queue of message texts for one client: when full the oldest is dropped and
    counted; the count is reported before the next message."""

    def __init__(self, size: int, what: str) -> None:
        self._items: collections.deque[str] = collections.deque(maxlen=size)
        self._ready = asyncio.Event()
        self._what = what
        self.dropped = 0  # not yet reported
        self.total_dropped = 0

    def put(self, text: str) -> bool:
        """Queue `text`; False when the oldest message had to be dropped."""
        full = len(self._items) == self._items.maxlen
        self._items.append(text)
        if full:
            self.dropped += 1
            self.total_dropped += 1
        self._ready.set()
        return not full

    def clear(self) -> None:
        self._items.clear()

    async def get(self, timeout_s: float) -> str:
        """The next message text (a drop report first, if any), or a heartbeat after
        `timeout_s` seconds without one."""
        if not self._items and not self.dropped:
            self._ready.clear()
            try:
                async with asyncio.timeout(timeout_s):  # no task per wait (wait_for makes one)
                    await self._ready.wait()
            except TimeoutError:
                return Heartbeat(at=now_ms()).to_json()
        if self.dropped:
            report = Dropped(
                count=self.dropped, total=self.total_dropped,
                message=f"{self.dropped} {self._what} dropped: the client reads too slowly",
            )  # fmt: skip
            self.dropped = 0
            return report.to_json()
        return self._items.popleft() if self._items else Heartbeat(at=now_ms()).to_json()


class Subscriber:
    """One client of a feed: its positions (the last entry sent, per stream), its outbox, and
    while it catches up, the feed's messages held back for it."""

    def __init__(self, feed: Feed, stream_id: str | None, queue_size: int) -> None:
        self.feed = feed
        self.stream_id = stream_id
        self.outbox = Outbox(queue_size, feed.source.payload + "s")
        self.positions: Positions = {}
        self._held: list[tuple[str, str, str]] | None = None  # while catching up

    def wants(self, stream_id: str) -> bool:
        return self.stream_id is None or self.stream_id == stream_id

    def offer(self, stream_id: str, entry_id: str, text: str) -> bool:
        """A message of the feed; False when the outbox had to drop one."""
        if self._held is not None:
            self._held.append((stream_id, entry_id, text))
            return True
        return self._deliver(stream_id, entry_id, text)

    def _deliver(self, stream_id: str, entry_id: str, text: str) -> bool:
        last = self.positions.get(stream_id)
        if last is not None and _entry_key(entry_id) <= _entry_key(last):
            return True  # sent already (caught up past it)
        self.positions[stream_id] = entry_id
        return self.outbox.put(text)

    async def position(self, after: Positions | str | None) -> None:
        """Read from after `after` (one entry id for every stream, or per stream; None: from
        now): catch up on what is stored after it, then follow the feed."""
        self._held = []
        self.outbox.clear()
        try:
            ids = [self.stream_id] if self.stream_id else await self.feed.streams()
            if after is None:  # from now: each stream's tail (the feed is at or before it)
                self.positions = await self.feed.tails(ids)
                return
            if isinstance(after, str):
                self.positions = dict.fromkeys(ids, after)
            else:
                self.positions = {sid: after.get(sid, "0-0") for sid in ids}
                self.positions |= {sid: p for sid, p in after.items() if self.wants(sid)}
            await self._catch_up()
        finally:
            held, self._held = self._held or [], None
            dropped = sum(not self._deliver(*item) for item in held)
            self.feed.count(len(held), dropped)

    async def _catch_up(self) -> None:
        source, r = self.feed.source, self.feed.redis
        while True:
            after = {source.key_of(sid): p for sid, p in self.positions.items()}
            rows = await store.read_entries(r, after, source.field, count=_READ_COUNT)
            if not rows:
                return
            dropped = 0
            for key, entry_id, raw in rows:
                sid = source.stream_of(key)
                dropped += not self._deliver(sid, entry_id, source.text(sid, entry_id, raw))
            self.feed.count(len(rows), dropped)


class Feed:
    """The one reader of a source's streams for every subscriber; runs while it has any."""

    def __init__(self, redis: Redis, source: Source, on_sent: Callable[[int, int], None]) -> None:
        self.redis = redis
        self.source = source
        self._on_sent = on_sent  # (messages offered, messages dropped) per read
        self._subscribers: set[Subscriber] = set()
        self._positions: Positions = {}  # stream id -> last entry read
        self._task: asyncio.Task[None] | None = None
        self._listed_at = 0.0
        self._wake = asyncio.Event()  # set when a stream becomes known

    async def attach(self, sub: Subscriber) -> None:
        """Start serving `sub` (the reader starts with the first subscriber)."""
        if self._task is None or self._task.done():
            self._positions = await self.tails(await self.source.list_streams(self.redis))
            self._listed_at = time.monotonic()
        if sub.stream_id is not None and sub.stream_id not in self._positions:
            self._positions |= await self.tails([sub.stream_id])
            self._wake.set()
        # added before the reader starts: it runs while it has subscribers
        self._subscribers.add(sub)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name=f"feed-{self.source.kind}")

    def detach(self, sub: Subscriber) -> None:
        self._subscribers.discard(sub)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def streams(self) -> list[str]:
        """Every stream the feed knows (and any new one since the last look)."""
        await self._relist(force=True)
        return list(self._positions)

    async def tails(self, stream_ids: list[str]) -> Positions:
        """The last entry id of each stream now ("0-0" when it has none)."""
        keys = [self.source.key_of(sid) for sid in stream_ids]
        last = await store.last_entry_ids(self.redis, keys)
        return {sid: last[key] for sid, key in zip(stream_ids, keys, strict=True)}

    async def _relist(self, *, force: bool = False) -> None:
        if not force and time.monotonic() - self._listed_at < _RELIST_S:
            return
        self._listed_at = time.monotonic()
        for sid in await self.source.list_streams(self.redis):
            self._positions.setdefault(sid, "0-0")  # new since the feed started: all of it

    async def _run(self) -> None:
        attempts = Attempts(_RETRY)
        while self._subscribers:
            try:
                await self._relist()
                if not self._positions:  # no stream yet: look again later, never spin
                    self._wake.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), _RELIST_S)
                    continue
                await self._read_once()
                attempts.succeeded()
            except Exception as e:  # the one reader of every subscriber goes on
                if not isinstance(e, HarclipError):
                    log.exception("%s feed: unexpected error", self.source.kind)
                message = ApiError(503, "unavailable", f"live feed paused: {e}").message_for_ws()
                for sub in list(self._subscribers):
                    sub.outbox.put(message.to_json())
                delay = attempts.failed() or 0.0
                log.warning("%s feed: %s; retrying in %.1f s", self.source.kind, e, delay)
                await asyncio.sleep(delay)

    async def _read_once(self) -> None:
        source = self.source
        after = {source.key_of(sid): p for sid, p in self._positions.items()}
        rows = await store.read_entries(
            self.redis, after, source.field, count=_READ_COUNT, block_ms=_READ_BLOCK_MS
        )
        offered = dropped = 0
        subscribers = list(self._subscribers)
        for key, entry_id, raw in rows:
            sid = source.stream_of(key)
            self._positions[sid] = entry_id
            text = source.text(sid, entry_id, raw)  # once, for every subscriber
            for sub in subscribers:
                if sub.wants(sid):
                    offered += 1
                    dropped += not sub.offer(sid, entry_id, text)
        self.count(offered, dropped)

    def count(self, offered: int, dropped: int) -> None:
        """Messages queued for subscribers and how many of them pushed an older one out."""
        if offered:
            self._on_sent(offered, dropped)
