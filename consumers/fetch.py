"""The worker's consumer side: the Kafka consumer of `harclip.frames` (live) and
`harclip.uploads` (bulk), decoding in a thread pool into the in-flight queue, backpressure by
fetching only the partitions whose lane has room (pausing them all after a stall), and the commit
of offsets the commit gate allows."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener
from aiokafka.errors import KafkaError
from aiokafka.structs import TopicPartition

from consumers.inflight import InFlight
from consumers.metrics import WorkerMetrics
from consumers.work import BULK, LIVE, decode_in_pool
from harclip.config import Settings
from harclip.engines.gpu_decode import TorchDecoder
from harclip.errors import Unavailable
from harclip.io.kafka import make_consumer

log = logging.getLogger(__name__)

POLL_MS = 100  # longest getmany wait, ms: how quickly the fetch loop notices a change
_LAG_EVERY_S = 2.0
_STALL_S = 1.0  # the lanes full this long without a fetch: pause every partition (see run)


class Fetcher:
    """Fetches and decodes records into `inflight` while it has room; commits offsets."""

    def __init__(
        self, settings: Settings, image_size: int, inflight: InFlight, metrics: WorkerMetrics
    ) -> None:
        self._settings = settings
        self._image_size = image_size  # pixels per side of the model's input
        self._inflight = inflight
        self._metrics = metrics
        self._pool = ThreadPoolExecutor(
            settings.batching.decode_threads, thread_name_prefix="decode"
        )
        self._consumer: AIOKafkaConsumer | None = None
        self.room = asyncio.Event()  # set by `freed`
        self._polled = time.monotonic()  # when the consumer was last polled (getmany)

    @property
    def assignment(self) -> set[TopicPartition]:
        return self._consumer.assignment() if self._consumer is not None else set()

    async def start(self, listener: ConsumerRebalanceListener) -> None:
        """Join the group on both topics (`Unavailable` when Kafka does not answer)."""
        k = self._settings.kafka
        self._consumer = make_consumer(k)
        self._consumer.subscribe([k.topics.frames, k.topics.uploads], listener=listener)
        try:
            await self._consumer.start()
        except KafkaError as e:
            raise Unavailable(f"Kafka at {k.bootstrap}: {e!r}") from e

    async def run(
        self, stopping: Callable[[], bool], hold: Callable[[], bool], decoder: TorchDecoder | None
    ) -> None:
        """Fetch until `stopping()`; nothing new while `hold()` (a sink is down, or per-frame
        mode waits for its last batch) or while the lanes are full."""
        assert self._consumer is not None
        c, s = self._consumer, self._settings
        frames_topic = s.kafka.topics.frames
        size = self._image_size
        next_lag = 0.0
        while not stopping():
            open_tps, room = self._backpressure(hold())
            if not open_tps:
                await self._wait_for_room()
                continue
            fetched = await c.getmany(*open_tps, timeout_ms=POLL_MS, max_records=room)
            self._polled = time.monotonic()
            for tp, records in fetched.items():
                lane = LIVE if tp.topic == frames_topic else BULK
                self._metrics.consumed.labels(tp.topic).inc(len(records))
                works = await decode_in_pool(
                    self._pool, s.batching.decode_threads, records, lane, size,
                    s.model.max_pixels, decoder,
                )  # fmt: skip
                if tp not in c.assignment():
                    continue  # revoked meanwhile: the new owner reads them again
                self._inflight.put(tp, works, lane)
            if time.monotonic() >= next_lag:
                next_lag = time.monotonic() + _LAG_EVERY_S
                self._metrics.record_lag(c.assignment(), c.highwater, self._inflight.last_committed)

    def freed(self) -> None:
        """The engine took a batch from the queue, or a batch was committed (called in the
        event loop): there may be room again, or a hold may have ended."""
        self.room.set()

    async def _wait_for_room(self) -> None:
        """Nothing may be fetched now. While that lasts under `_STALL_S` (the engine is busy
        with the batches queued), wait for it to take one: the partitions stay unpaused, so
        the records the consumer prefetched (one fetch per partition at most) are there the
        moment it does. Past `_STALL_S` (a sink is down or slow, or `hold`), every partition is
        paused (the prefetched records are dropped and read again later) and the consumer is
        polled every `POLL_MS`, which keeps it in the group however long it lasts."""
        assert self._consumer is not None
        c = self._consumer
        if time.monotonic() - self._polled < _STALL_S:
            self.room.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.room.wait(), POLL_MS / 1000)
            return
        c.pause(*c.assignment())
        await c.getmany(timeout_ms=POLL_MS)
        self._polled = time.monotonic()

    def _backpressure(self, hold: bool) -> tuple[list[TopicPartition], int]:
        """The partitions the next fetch may read (those of lanes with room; none while
        `hold`; only live ones while live work waits: live first) and how many records it may
        bring (the smaller room of the open lanes). A partition is only paused by a stall
        (`_wait_for_room`) and resumed here."""
        assert self._consumer is not None
        c, queue = self._consumer, self._inflight.queue
        assigned = c.assignment()
        live_topic = self._settings.kafka.topics.frames
        rooms = {LIVE: queue.room(LIVE), BULK: queue.room(BULK)}
        if hold:
            rooms = {LIVE: 0, BULK: 0}
        elif rooms[LIVE] < queue.capacity:
            rooms[BULK] = 0  # live work waiting: uploads wait (live first)
        lane = {tp: LIVE if tp.topic == live_topic else BULK for tp in assigned}
        open_tps = [tp for tp in assigned if rooms[lane[tp]] > 0]
        if open_tps and c.paused():
            c.resume(*c.paused())
        # one fetch may bring records of either open lane: no more than the smaller room, so
        # neither lane ever holds more than its capacity
        return open_tps, min((rooms[lane[tp]] for tp in open_tps), default=0)

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        """Commit `offsets`; a failed commit (rebalanced away) is logged: the new owner redoes
        those records (at-least-once)."""
        if not offsets:
            return
        assert self._consumer is not None
        try:
            await self._consumer.commit(offsets)
        except KafkaError as e:
            log.warning("commit of %d partitions failed: %r", len(offsets), e)
            return
        self._inflight.last_committed.update(offsets)

    async def stop(self) -> None:
        """Leave the group."""
        if self._consumer is not None:
            await self._consumer.stop()

    def close_pool(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
