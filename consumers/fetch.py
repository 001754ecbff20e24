"""The worker's consumer side: the Kafka consumer of `harclip.frames` (live) and
`harclip.uploads` (bulk), decoding in a thread pool into the in-flight queue, backpressure by
pausing partitions, and the commit of offsets the commit gate allows."""

from __future__ import annotations

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
            room = self._backpressure(hold())
            if room <= 0:  # every partition paused: polling keeps the group membership alive
                await c.getmany(timeout_ms=POLL_MS)
                continue
            fetched = await c.getmany(timeout_ms=POLL_MS, max_records=room)
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

    def _backpressure(self, hold: bool) -> int:
        """Pause the partitions of full lanes (all of them while `hold`), resume the others;
        returns how many records the next fetch may bring."""
        assert self._consumer is not None
        c, queue = self._consumer, self._inflight.queue
        assigned = c.assignment()
        live_topic = self._settings.kafka.topics.frames
        rooms = {LIVE: queue.room(LIVE), BULK: queue.room(BULK)}
        if hold:
            rooms = {LIVE: 0, BULK: 0}
        elif rooms[LIVE] < queue.capacity:
            rooms[BULK] = 0  # live work waiting: uploads wait (live first)
        pause = [tp for tp in assigned if rooms[LIVE if tp.topic == live_topic else BULK] <= 0]
        resume = [tp for tp in assigned if tp not in pause]
        if pause:
            c.pause(*pause)
        if resume:
            c.resume(*resume)
        return max(rooms.values())

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
