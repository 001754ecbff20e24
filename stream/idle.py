"""The idle timer: a stream of this worker's partitions that has been quiet past a threshold
gets a tick on the app's ticks topic (same key, so the same partition and owner as its
predictions), which the `track` agent turns into `stream.down` and stream-down alerts."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiokafka.errors import KafkaError
from aiokafka.partitioner import DefaultPartitioner
from faust.types import TP

from harclip.messages import now_ms
from stream.agents.track import TrackAgent
from stream.metrics import StreamMetrics
from stream.tracker import StreamState

log = logging.getLogger("stream")


class IdleTicker:
    """`check` (every `interval_s`) ticks the quiet streams of the partitions this worker has
    caught up on."""

    def __init__(
        self,
        app: Any,
        track: TrackAgent,
        send_tick: Callable[[bytes, bytes], Awaitable[Any]],
        metrics: StreamMetrics,
        predictions_topic: str,
        partitions: int,
    ) -> None:
        self.app = app  # the Faust app: rebalancing, assignor, consumer
        self.track = track
        self.metrics = metrics
        self.topic = predictions_topic
        self.partitions = list(range(partitions))
        self._send_tick = send_tick
        self._partitioner = DefaultPartitioner()  # where the producers put each stream's key
        self.ticked: dict[str, tuple[int, set[int]]] = {}  # stream -> (last_wall, ticked ms)

    def forget(self) -> None:
        self.ticked.clear()

    async def check(self) -> None:
        """Tick the streams of this worker's partitions that went quiet past a threshold.
        Only partitions whose records are all processed count: a stream is quiet when Kafka
        holds nothing more for it, not while this worker is behind or rebalancing."""
        if self.app.rebalancing:
            return
        actives = self.app.assignor.assigned_actives()
        mine = [tp for tp in actives if tp.topic == self.topic]
        if not mine:
            return
        caught_up = await self._caught_up(mine)
        if caught_up is None:
            return
        now = now_ms()
        owned = 0
        for key, stored in list(self.track.states.items()):
            partition = self._partitioner(key, self.partitions, self.partitions)
            if TP(self.topic, partition) not in actives:
                continue
            owned += 1
            if partition in caught_up:
                await self._tick_if_due(key, stored, now)
        self.metrics.streams.set(owned)

    async def _caught_up(self, mine: list[Any]) -> set[int] | None:
        """The partitions of `mine` whose records are all processed (None: a rebalance began)."""
        consumer = self.app.consumer
        try:
            ends = await consumer.highwaters(*mine)
        except KafkaError as e:  # a rebalance began meanwhile: next tick
            log.debug("idle check skipped: %r", e)
            return None
        caught_up: set[int] = set()
        for tp in mine:
            done = self.track.processed.get(tp.partition)
            if done is None:  # nothing processed since the assignment: where it starts
                try:
                    start = await consumer.position(tp)
                except KafkaError:  # revoked since `actives` was read: not ours to tick
                    continue
                done = -1 if start is None else start - 1
            if done + 1 >= ends.get(tp, 0):
                caught_up.add(tp.partition)
        return caught_up

    async def _tick_if_due(self, key: bytes, stored: bytes, now: int) -> None:
        sid = key.decode()
        st = self.track.cache.get(sid) or StreamState.from_bytes(stored)
        idle = now - max(st.last_wall, self.track.assigned_at)
        last_wall, done_ms = self.ticked.get(sid, (st.last_wall, set()))
        if last_wall != st.last_wall:
            done_ms = set()
        thresholds = self.track.tracker.idle_thresholds_ms(sid)
        due = [th for th in thresholds if idle >= th and th not in done_ms]
        if due:
            done_ms.update(due)
            await self._send_tick(key, orjson.dumps({"tick": "idle", "at": now}))
        self.ticked[sid] = (st.last_wall, done_ms)


def send_tick(topic: Any) -> Callable[[bytes, bytes], Awaitable[Any]]:
    """Sends a tick to the Faust topic `topic`."""

    async def send(key: bytes, value: bytes) -> Any:
        return await topic.send(key=key, value=value)

    return send
