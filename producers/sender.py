"""Sending Frames to Kafka. Live sources go through `LiveSender`: a small local queue that drops
its oldest unsent frame when the broker is slow (a camera must not fall behind real time);
bulk sources `send` directly and wait (backpressure), so an upload never loses a file."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from dataclasses import dataclass

from aiokafka.errors import KafkaError

from harclip.io.kafka import FrameTooLarge, RenewingProducer
from harclip.messages import Frame

log = logging.getLogger(__name__)

LIVE_QUEUE = 8  # frames a live source may hold unsent before dropping the oldest
_MAX_PENDING = 64  # sent but not yet acknowledged, before `send` waits for the oldest


@dataclass(slots=True)
class SendStats:
    """What a producer did, for its summary line and tests."""

    sent: int = 0  # acknowledged by Kafka (acks=all)
    dropped: int = 0  # live frames dropped unsent (slow broker)
    failed: int = 0  # not acknowledged (Kafka error)


class Acks:
    """Tracks delivery futures: at most `_MAX_PENDING` outstanding, counted into `stats`."""

    def __init__(self, stats: SendStats) -> None:
        self.stats = stats
        self._pending: deque[asyncio.Future[object]] = deque()

    async def add(self, fut: asyncio.Future[object]) -> None:
        self._pending.append(fut)
        while len(self._pending) > _MAX_PENDING:
            await self._settle(self._pending.popleft())

    async def drain(self) -> None:
        while self._pending:
            await self._settle(self._pending.popleft())

    async def _settle(self, fut: asyncio.Future[object]) -> None:
        try:
            await fut
            self.stats.sent += 1
        except KafkaError as e:
            self.stats.failed += 1
            log.warning("a frame was not acknowledged: %r", e)


class LiveSender:
    """A bounded queue between a capture thread and Kafka; `offer` is thread-safe through the
    event loop and drops the oldest unsent frame when full."""

    def __init__(self, producer: RenewingProducer, topic: str, capacity: int = LIVE_QUEUE) -> None:
        self._producer = producer
        self._topic = topic
        self._queue: deque[Frame] = deque()
        self._capacity = capacity
        self._ready = asyncio.Event()
        self._closed = False
        self.stats = SendStats()
        self._acks = Acks(self.stats)

    def offer(self, frame: Frame) -> None:
        """Queue `frame` (call on the event loop's thread)."""
        if len(self._queue) >= self._capacity:
            self._queue.popleft()
            self.stats.dropped += 1
        self._queue.append(frame)
        self._ready.set()

    def close(self) -> None:
        """No more frames: `run` sends what is queued and returns."""
        self._closed = True
        self._ready.set()

    async def run(self) -> SendStats:
        """Send queued frames until closed and empty, then wait for every acknowledgement."""
        while True:
            if not self._queue:
                if self._closed:
                    break
                self._ready.clear()
                await self._ready.wait()
                continue
            frame = self._queue.popleft()
            try:
                await self._acks.add(await self._producer.send_frame(self._topic, frame))
            except (KafkaError, FrameTooLarge) as e:
                self.stats.failed += 1
                log.warning("cannot send frame %s: %s", frame.frame_id, e)
        await self._acks.drain()
        return self.stats
