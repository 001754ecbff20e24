"""The `track` agent: predictions (and the idle timer's ticks) -> each stream's state
(`Tracker`, stream/tracker.py) -> events to harclip.events.

Events are sent as they arise; the states they led to are coalesced (one table write per stream
per commit) and written by the checkpoint only after Kafka acknowledged those events, so a
stored state never follows from an event that was lost."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any

from harclip.errors import MessageError
from harclip.messages import Event, Prediction, now_ms
from stream.continuity import Record
from stream.metrics import StreamMetrics
from stream.tracker import StreamState, Tracker

log = logging.getLogger("stream")

Send = Callable[[Event], Awaitable[Awaitable[Any]]]  # -> the future of Kafka's ack


class TrackAgent:
    name = "track"

    def __init__(
        self,
        tracker: Tracker,
        states: MutableMapping[bytes, bytes],
        send: Send,
        metrics: StreamMetrics,
        ticks_topic: str,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self.tracker = tracker
        self.states = states  # the `states` table: stream id -> StreamState bytes
        self.metrics = metrics
        self.ticks_topic = ticks_topic
        self.cache: dict[str, StreamState] = {}  # states of this worker's partitions, as objects
        self.dirty: dict[str, tuple[StreamState, Record]] = {}  # stream -> (state, its record)
        self.inflight: list[Awaitable[Any]] = []  # acks of the events sent since the last commit
        self.processed: dict[int, int] = {}  # predictions partition -> offset of the last applied
        # Silence is counted from the later of a stream's last prediction and this worker getting
        # its partitions, so a restarted or rebalanced worker first catches up on its backlog.
        self.assigned_at = clock()
        self._send = send
        self._clock = clock

    def load(self, stream_id: str) -> StreamState | None:
        st = self.cache.get(stream_id)
        if st is None:
            stored = self.states.get(stream_id.encode())
            if stored is not None:
                st = self.cache[stream_id] = StreamState.from_bytes(stored)
        return st

    async def apply(self, records: Sequence[Record]) -> None:
        for r in records:
            out: list[Event] = []
            if r.topic == self.ticks_topic:
                st = self._on_tick(r.key, out)
            else:
                st = self._on_prediction(r, out)
                self.processed[r.partition] = r.offset
            if st is None:
                continue
            for e in out:  # the agent goes on; the commit waits for these acks
                self.inflight.append(await self._send(e))
                self.metrics.events.labels(e.type).inc()
            self.dirty[st.stream_id] = (st, r)

    def _on_prediction(self, r: Record, out: list[Event]) -> StreamState | None:
        """Apply one prediction; the changed state (None if ignored), its events into `out`."""
        m = self.metrics
        try:
            p = Prediction.from_json(r.value or b"")
            if r.key is not None and r.key != p.stream_id.encode():
                raise MessageError(f"record key {r.key!r} is not its stream_id {p.stream_id!r}")
        except MessageError as e:
            m.ignored.labels("malformed").inc()
            log.warning("ignoring a malformed prediction: %s", e)
            return None
        wall = self._clock()
        result = self.tracker.on_prediction(self.load(p.stream_id), p, wall)
        if result is None:
            m.ignored.labels("stale").inc()
            return None
        st, events = result
        self.cache[p.stream_id] = st
        out += events
        m.predictions.inc()
        lag_s = max(0.0, wall / 1000 - r.timestamp_s)
        m.lag.observe(lag_s)
        m.behind.saw(lag_s, wall / 1000)
        return st

    def _on_tick(self, key: bytes | None, out: list[Event]) -> StreamState | None:
        st = self.load(key.decode()) if key else None
        if st is None:
            return None
        quiet_since = max(st.last_wall, self.assigned_at)
        out += self.tracker.on_idle(st, self._clock(), quiet_since=quiet_since)
        return st

    def sent(self) -> list[Awaitable[Any]]:
        sent, self.inflight = self.inflight, []
        return sent

    async def write(self, focus: Callable[[Record], None]) -> None:
        for st, r in self.dirty.values():
            focus(r)  # the table (and RocksDB) find the key's partition through the record
            self.states[st.stream_id.encode()] = st.to_bytes()
        self.dirty.clear()

    def drop(self) -> None:
        self.cache.clear()  # the table keeps the last written states
        self.dirty.clear()
        self.inflight.clear()

    def reassigned(self) -> None:
        """Partitions changed hands: cached states may be stale, silence counts from now."""
        self.cache.clear()
        self.processed.clear()
        self.assigned_at = self._clock()
