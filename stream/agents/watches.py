"""The `watches` agent: each prediction's watch scores (`Prediction.watches`) -> per (stream,
watch) calibration and firing (`harclip.watches.firing`) -> `watch.start` / `watch.end` events to
harclip.events (so Elasticsearch, Redis, webhooks, /events and /ws/events get them like any
event, and the evidence step gives them a snapshot and a clip).

`WatchBook` holds the watches in force: the `watches` record of harclip.control
(`harclip.watches.WatchSet`), applied live; a malformed one is refused (logged, counted) and the
watches in force stay. The state of each (stream, watch) is in the Faust table `watches` (key
`<stream_id>\\x1f<watch name>`, in the partition of the stream's predictions), written like the
`track` agent's states: after Kafka acknowledged the events it led to, before the records are
acknowledged, so a restarted or rebalanced worker goes on from the same calibration.
"""

from __future__ import annotations

import fnmatch
import logging
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge
from pydantic import ValidationError

from harclip.errors import MessageError
from harclip.messages import Event, ModelRef, Prediction, now_ms
from harclip.watches import Watch, WatchSet
from harclip.watches.calibration import fingerprint
from harclip.watches.firing import WatchState, close, step
from stream.continuity import Record

log = logging.getLogger("stream")

Send = Callable[[Event], Awaitable[Awaitable[Any]]]  # -> the future of Kafka's ack
_MAX_MATCH_CACHE = 100_000  # streams whose matching watches are remembered


class WatchMetrics:
    """The watches' metrics, in the app's registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.watches = Gauge("harclip_stream_watches", "watches in force", registry=registry)
        self.refused = Counter(
            "harclip_stream_watches_refused", "watches records refused", registry=registry
        )
        self.calibrating = Counter(
            "harclip_stream_watch_frames_calibrating",
            "watch scores applied while the camera was still calibrating",
            registry=registry,
        )


class WatchBook:
    """The watches in force and which of them apply to a stream."""

    def __init__(self, metrics: WatchMetrics) -> None:
        self.metrics = metrics
        self.version = -1
        self.watches: dict[str, Watch] = {}
        self.fingerprints: dict[str, str] = {}  # name -> fingerprint (vectors hashed once)
        self._matching: dict[str, tuple[Watch, ...]] = {}

    def on_record(self, raw: bytes) -> None:
        """A `watches` record of harclip.control: applied if valid and not older, else refused."""
        try:
            ws = WatchSet.model_validate_json(raw)
        except ValidationError as e:
            where = "; ".join(f"{'.'.join(map(str, x['loc']))}: {x['msg']}" for x in e.errors())
            self.metrics.refused.inc()
            log.error("watches change refused (%s); the watches in force stay", where[:500])
            return
        if ws.version < self.version:
            log.info("watches version %d older than %d in force: ignored", ws.version, self.version)
            return
        self.set(ws)

    def set(self, ws: WatchSet) -> None:
        self.version = ws.version
        self.watches = {w.spec.name: w for w in ws.watches}
        self.fingerprints = {w.spec.name: fingerprint(w) for w in ws.watches}
        self._matching = {}
        self.metrics.watches.set(len(self.watches))
        log.info("watches in force: %d (version %d)", len(self.watches), ws.version)

    def for_stream(self, stream_id: str) -> tuple[Watch, ...]:
        hit = self._matching.get(stream_id)
        if hit is None:
            if len(self._matching) > _MAX_MATCH_CACHE:
                self._matching.clear()
            hit = tuple(w for w in self.watches.values() if _matches(w, stream_id))
            self._matching[stream_id] = hit
        return hit

    def webhooks(self, name: str | None) -> list[str]:
        w = self.watches.get(name or "")
        return list(w.spec.webhooks) if w is not None else []


def _matches(w: Watch, stream_id: str) -> bool:
    return any(fnmatch.fnmatchcase(stream_id, g) for g in w.spec.streams)


def table_key(stream_id: str, watch: str) -> bytes:
    return f"{stream_id}\x1f{watch}".encode()


class WatchesAgent:
    name = "watches"

    def __init__(
        self,
        book: WatchBook,
        table: MutableMapping[bytes, bytes],
        send: Send,
        events_total: Any,
        ticks_topic: str,
        idle_timeout_ms: int,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self.book = book
        self.table = table  # the `watches` table: table_key -> WatchState bytes
        self.events_total = events_total  # StreamMetrics.events (by type)
        self.ticks_topic = ticks_topic
        self.idle_timeout_ms = idle_timeout_ms
        self.cache: dict[bytes, WatchState] = {}
        self.dirty: dict[bytes, tuple[WatchState, Record]] = {}
        self.inflight: list[Awaitable[Any]] = []
        self.models: dict[str, ModelRef] = {}  # stream -> the newest prediction's model
        self.assigned_at = clock()
        self._send = send
        self._clock = clock

    def load(self, key: bytes) -> WatchState:
        st = self.cache.get(key)
        if st is None:
            stored = self.table.get(key)
            st = WatchState.from_bytes(stored) if stored is not None else WatchState()
            self.cache[key] = st
        return st

    async def apply(self, records: Sequence[Record]) -> None:
        for r in records:
            if r.topic == self.ticks_topic:
                await self._on_tick(r)
            else:
                await self._on_prediction(r)

    async def _on_prediction(self, r: Record) -> None:
        try:
            p = Prediction.from_json(r.value or b"")
        except MessageError:
            return  # the track agent logs and counts it
        wall = self._clock()
        self.models[p.stream_id] = p.model
        for w in self.book.for_stream(p.stream_id):
            key = table_key(p.stream_id, w.spec.name)
            st = self.load(key)
            score = p.watches.get(w.spec.name, 0.0)  # left out: under the floor
            fp = self.book.fingerprints.get(w.spec.name)
            events = step(st, w, p.stream_id, p.seq, p.captured_at, score, p.model, wall, fp)
            if not st.cal.ready and w.spec.pinned_threshold is None:
                self.book.metrics.calibrating.inc()
            await self._emit(events)
            self.dirty[key] = (st, r)

    async def _on_tick(self, r: Record) -> None:
        """The stream went quiet: its open firings end once idle_timeout has passed."""
        if not r.key:
            return
        sid = r.key.decode()
        now = self._clock()
        for w in self.book.for_stream(sid):
            key = table_key(sid, w.spec.name)
            st = self.load(key)
            if st.open is None or now - max(st.last_wall, self.assigned_at) < self.idle_timeout_ms:
                continue
            await self._emit(close(st, w, sid, self.models.get(sid), now))
            self.dirty[key] = (st, r)

    async def _emit(self, events: list[Event]) -> None:
        for e in events:  # the agent goes on; the commit waits for these acks
            self.inflight.append(await self._send(e))
            self.events_total.labels(e.type).inc()

    def sent(self) -> list[Awaitable[Any]]:
        sent, self.inflight = self.inflight, []
        return sent

    async def write(self, focus: Callable[[Record], None]) -> None:
        for key, (st, r) in self.dirty.items():
            focus(r)  # the table (and RocksDB) find the key's partition through the record
            self.table[key] = st.to_bytes()
        self.dirty.clear()

    def drop(self) -> None:
        self.cache.clear()  # the table keeps the last written states
        self.dirty.clear()
        self.inflight.clear()

    def reassigned(self) -> None:
        """Partitions changed hands: cached states may be stale, silence counts from now."""
        self.cache.clear()
        self.models.clear()
        self.assigned_at = self._clock()
