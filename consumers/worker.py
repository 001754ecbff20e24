"""The inference worker: one member of the consumer group on `harclip.frames` (live) and
`harclip.uploads` (bulk).

Three stages, pipelined:
  fetch (asyncio)   getmany -> decode in a thread pool -> two-lane queue (live first); pauses a
                    lane's partitions when its lane is full or a sink is down (backpressure)
  engine (thread)   collect_batch (max_batch, max_wait, stale live frames set aside) -> embed ->
                    head -> Predictions; at most `max_inflight_batches` batches not yet committed
  sinks (asyncio)   Kafka (predictions + DLQ), Redis, Elasticsearch, retried with backoff until
                    every one acknowledged (frames a sink refused for good: to the DLQ) ->
                    commit the batch's offsets, batches in order
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener
from aiokafka.errors import KafkaError
from aiokafka.structs import TopicPartition

from consumers.delivery import Delivery
from consumers.inference import run_batch
from consumers.keyframes import KeyframePolicy
from consumers.metrics import WorkerMetrics
from consumers.sinks import ElasticsearchSink, KafkaSink, RedisSink, Sink
from consumers.work import (
    BULK,
    LIVE,
    BatchResult,
    CommitGate,
    Work,
    decode_in_pool,
    failure_reason,
)
from harclip.batching import TwoLaneQueue, collect_batch
from harclip.config import Settings
from harclip.control import HEAD_KEY, ControlFollower, HeadHolder
from harclip.engines import Engine, create_engine
from harclip.engines.gpu_decode import TorchDecoder, decoder_for
from harclip.errors import ModelError, Unavailable
from harclip.health import HealthServer
from harclip.io.indices import EmbeddingSpace
from harclip.io.kafka import make_consumer
from harclip.io.topics import ensure_topics
from harclip.messages import now_ms
from harclip.model.bundle import Bundle

log = logging.getLogger(__name__)

_POLL_MS = 100  # longest getmany wait, ms: how quickly the fetch loop notices a change
_IDLE_S = 0.1  # engine thread: longest wait for a first item or a free slot, seconds
_REVOKE_WAIT_S = 20.0  # on rebalance: longest wait for in-flight batches to commit, seconds
_SHUTDOWN_GRACE_S = 30.0  # on stop: longest retry of a sink that is down, seconds
_LAG_EVERY_S = 2.0


class Worker:
    """One inference worker process' state; `await run(stop)` until `stop` is set."""

    def __init__(self, settings: Settings, bundle: Bundle) -> None:
        self.settings = settings
        self.bundle = bundle
        self.engine_name = settings.model.engine
        self.pipelined = settings.batching.pipelined
        self.metrics = WorkerMetrics()
        b = settings.batching
        self._queue: TwoLaneQueue[Work] = TwoLaneQueue(capacity=2 * b.max_batch)
        self._slots = threading.Semaphore(b.max_inflight_batches if self.pipelined else 1)
        self._halt = threading.Event()
        self._results: asyncio.Queue[BatchResult | BaseException | None] = asyncio.Queue()
        self._outstanding: Counter[TopicPartition] = Counter()  # queued or in a batch
        self._committed = asyncio.Event()  # set after each batch is accounted for
        self._last_committed: dict[TopicPartition, int] = {}
        self._gate = CommitGate()
        self._decode_pool = ThreadPoolExecutor(b.decode_threads, thread_name_prefix="decode")
        self._engine: Engine | None = None
        self._decoder: TorchDecoder | None = None  # JPEGs decoded on the engine's GPU
        self._consumer: AIOKafkaConsumer | None = None
        self._sinks: list[Sink] = []
        self._delivery: Delivery | None = None
        self._stopping = False
        self.started = asyncio.Event()  # running: clients open, consuming
        self.assigned = asyncio.Event()  # holds partitions (set again after each rebalance)
        self._changed = asyncio.Event()  # set after every batch and head swap (see wait_for)
        self.heads = HeadHolder(bundle.manifest, bundle.load_head(), self.metrics.control)
        self.heads.on_change(lambda _: self._changed.set())
        self.heads.on_change(lambda new: self.metrics.serve_labels(new.head.labels))
        self.metrics.serve_labels(self.heads.head.labels)
        self._control = ControlFollower(settings.kafka, {HEAD_KEY: self.heads.offer_raw})
        m = settings.metrics
        self._health = HealthServer(m.host, m.port, self.metrics.registry, self.not_ready)

    # -- state read by others ----------------------------------------------------------------

    @property
    def health_port(self) -> int:
        return self._health.port

    def not_ready(self) -> list[str]:
        """What keeps this worker from being ready (empty: ready)."""
        out = []
        if not self.started.is_set():
            out.append("starting")
        out += [f"sink {name} unavailable (retrying)" for name in sorted(self._trouble)]
        if self._stopping:
            out.append("stopping")
        return out

    async def wait_for(self, condition: Callable[[], bool], timeout_s: float) -> None:
        """Return once `condition()` holds, re-checked after every batch, every round of sink
        flushes (a retry) and head swap; `TimeoutError` after `timeout_s` seconds."""
        async with asyncio.timeout(timeout_s):
            while True:
                self._changed.clear()
                if condition():
                    return
                await self._changed.wait()

    @property
    def _trouble(self) -> set[str]:
        return self._delivery.trouble if self._delivery is not None else set()

    # -- lifecycle ------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Start, process until `stop` is set, then finish the in-flight batches, commit and
        leave the group. Start-up errors (`ConfigError`, `ModelError`, `SinkUnavailable`) raise."""
        try:
            await self._start()
            await self._loop(stop)
        finally:
            await self._close()

    async def _start(self) -> None:
        s = self.settings
        self._engine = await asyncio.to_thread(
            create_engine, self.bundle, self.engine_name, s.model
        )
        self.heads.use_engine(self._engine.label)  # every Prediction names the engine
        size = self.bundle.manifest.image_size
        self._decoder = decoder_for(
            self._engine, size, max_pixels=s.model.max_pixels, enabled=s.model.gpu_decode
        )
        if self._engine.embed_dim != self.heads.head.embed_dim:
            raise ModelError(f"the head is {self.heads.head.embed_dim}-dim, the engine makes "
                             f"{self._engine.embed_dim}")  # fmt: skip
        await ensure_topics(s.kafka)
        kafka = KafkaSink(s.kafka, self.metrics.dlq_lost)  # also the dead-letter writer
        self._sinks = [kafka]
        if s.redis.enabled:
            self._sinks.append(RedisSink(s.redis))
        if s.elasticsearch.enabled:
            e, m = s.elasticsearch, self.bundle.manifest
            space = EmbeddingSpace(m.name, str(m.version), m.embed_dim)
            keyframes = KeyframePolicy(e.keyframe_distance, e.keyframe_every_s,
                                       enabled=e.keyframes)  # fmt: skip
            self._sinks.append(ElasticsearchSink(e, space, keyframes))
        for sink in self._sinks:
            await sink.start()
        self._delivery = Delivery(self._sinks, kafka, self.metrics, self._changed.set)
        await self._control.catch_up()  # the first batch uses the newest head
        if s.metrics.enabled:
            await self._health.start()
        t = s.kafka.topics
        self._consumer = make_consumer(s.kafka)
        self._consumer.subscribe([t.frames, t.uploads], listener=_Rebalance(self))
        try:
            await self._consumer.start()
        except KafkaError as e:
            raise Unavailable(f"Kafka at {s.kafka.bootstrap}: {e!r}") from e
        self.started.set()
        self.metrics.ready.set(1)
        log.info("worker up: engine %s, model %s v%s, head v%d, batch <= %d, wait %g ms",
                 self._engine.label, self.bundle.manifest.name, self.bundle.manifest.version,
                 self.heads.head.version, s.batching.max_batch, s.batching.max_wait_ms)  # fmt: skip

    async def _loop(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        engine_thread = threading.Thread(
            target=self._engine_loop, args=(loop,), name="engine", daemon=True
        )
        engine_thread.start()
        fetch = asyncio.create_task(self._fetch_loop(), name="fetch")
        sinks = asyncio.create_task(self._sink_loop(), name="sinks")
        follow = asyncio.create_task(self._control.run(stop), name="control")
        stopped = asyncio.create_task(stop.wait(), name="stop")
        done, _ = await asyncio.wait(
            {fetch, sinks, follow, stopped}, return_when=asyncio.FIRST_COMPLETED
        )
        log.info("worker stopping: finishing in-flight batches")
        self._stopping = True
        if self._delivery is not None:
            self._delivery.give_up_at = time.monotonic() + _SHUTDOWN_GRACE_S
        stop.set()
        await asyncio.gather(fetch, return_exceptions=True)
        self._drop_queued(lambda _: True)
        self._halt.set()
        self._queue.wake()
        await asyncio.gather(sinks, follow, return_exceptions=True)
        await asyncio.to_thread(engine_thread.join)
        for task in (fetch, sinks, follow):  # a stage that crashed: re-raise its error
            if task in done and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]

    async def _close(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()  # leaves the group
        for sink in self._sinks:
            await sink.stop()
        await self._control.stop()
        await self._health.stop()
        if self._engine is not None:
            self._engine.close()
        self._decode_pool.shutdown(wait=True, cancel_futures=True)
        self.metrics.ready.set(0)

    # -- stage 1: fetch + decode ---------------------------------------------------------------

    async def _fetch_loop(self) -> None:
        assert self._consumer is not None
        c, s = self._consumer, self.settings
        frames_topic = s.kafka.topics.frames
        size, max_pixels = self.bundle.manifest.image_size, s.model.max_pixels
        threads = s.batching.decode_threads
        next_lag = 0.0
        while not self._stopping:
            # per-frame mode: nothing new until the last batch is committed
            hold = not self.pipelined and sum(self._outstanding.values()) > 0
            room = self._backpressure(hold)
            if room <= 0:  # every partition paused: polling keeps the group membership alive
                await c.getmany(timeout_ms=_POLL_MS)
                continue
            fetched = await c.getmany(timeout_ms=_POLL_MS, max_records=room)
            for tp, records in fetched.items():
                lane = LIVE if tp.topic == frames_topic else BULK
                self.metrics.consumed.labels(tp.topic).inc(len(records))
                works = await decode_in_pool(
                    self._decode_pool, threads, records, lane, size, max_pixels, self._decoder
                )
                if tp not in c.assignment():
                    continue  # revoked meanwhile: the new owner reads them again
                for w in works:
                    self._queue.put(w, lane)
                self._outstanding[tp] += len(works)
            if time.monotonic() >= next_lag:
                next_lag = time.monotonic() + _LAG_EVERY_S
                self.metrics.record_lag(c.assignment(), c.highwater, self._last_committed)

    def _backpressure(self, hold: bool) -> int:
        """Pause the partitions of full lanes (all of them while a sink is down or `hold`),
        resume the others; returns how many records the next fetch may bring."""
        assert self._consumer is not None
        c = self._consumer
        assigned = c.assignment()
        live_topic = self.settings.kafka.topics.frames
        rooms = {LIVE: self._queue.room(LIVE), BULK: self._queue.room(BULK)}
        if self._trouble or hold:
            rooms = {LIVE: 0, BULK: 0}
        elif rooms[LIVE] < self._queue.capacity:
            rooms[BULK] = 0  # live work waiting: uploads wait (live first)
        pause = [tp for tp in assigned if rooms[LIVE if tp.topic == live_topic else BULK] <= 0]
        resume = [tp for tp in assigned if tp not in pause]
        if pause:
            c.pause(*pause)
        if resume:
            c.resume(*resume)
        return max(rooms.values())

    # -- stage 2: engine (thread) --------------------------------------------------------------

    def _engine_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        b, k = self.settings.batching, self.settings.model.top_k
        max_age_s = b.max_age_ms / 1000
        assert self._engine is not None
        try:
            while not self._halt.is_set():
                if not self._slots.acquire(timeout=_IDLE_S):
                    continue
                batch = collect_batch(
                    self._queue, b.max_batch, b.max_wait_ms / 1000, max_age_s,
                    first_timeout_s=_IDLE_S,
                )  # fmt: skip
                if batch.empty:
                    self._slots.release()
                    continue
                in_use = self.heads.current  # one head per batch
                result = run_batch(batch, self._engine, in_use, k)
                loop.call_soon_threadsafe(self._results.put_nowait, result)
        except BaseException as e:  # a bug: the sink loop re-raises it in the event loop
            loop.call_soon_threadsafe(self._results.put_nowait, e)
        finally:
            loop.call_soon_threadsafe(self._results.put_nowait, None)

    # -- stage 3: sinks + commit -------------------------------------------------------------

    async def _sink_loop(self) -> None:
        while True:
            item = await self._results.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            assert self._delivery is not None
            delivered = await self._delivery.deliver(item)
            await self._commit(item, delivered)
            self._account(item, delivered)
            self._slots.release()

    async def _commit(self, result: BatchResult, delivered: bool) -> None:
        assert self._consumer is not None
        offsets = self._gate.after(result, delivered, self._consumer.assignment())
        if not offsets:
            return
        try:
            await self._consumer.commit(offsets)
        except KafkaError as e:  # rebalanced away: the new owner redoes them (at-least-once)
            log.warning("commit of %d partitions failed: %r", len(offsets), e)
            return
        self._last_committed.update(offsets)

    def _account(self, result: BatchResult, delivered: bool) -> None:
        m = self.metrics
        self._forget(result.works)
        self._committed.set()
        self._changed.set()
        if result.stale:
            m.dropped.labels("stale").inc(len(result.stale))
        for w in result.failed:
            m.failed.labels(failure_reason(w.error)).inc()
        if not delivered or not (result.predicted or result.failed):
            return
        m.batch_size.observe(len(result.predicted) + len(result.failed))
        m.infer_latency.observe(result.infer_s)
        done = now_ms()
        for p in result.predicted:
            m.queue_latency.observe(p.prediction.latency_ms.queue / 1000)
            m.e2e_latency.observe(max(0, done - p.prediction.captured_at) / 1000)
            m.count_label(p.prediction.label)
            m.score.observe(p.prediction.score)
        m.predicted.inc(len(result.predicted))

    # -- rebalance -------------------------------------------------------------------------------

    def _drop_queued(self, pred: Callable[[Work], bool]) -> None:
        self._forget(self._queue.remove_if(pred))

    def _forget(self, works: list[Work]) -> None:
        """`works` are no longer queued or in a batch."""
        for w in works:
            self._outstanding[w.tp] -= 1
        self._outstanding = +self._outstanding  # drop zero counts

    async def on_revoked(self, revoked: set[TopicPartition]) -> None:
        """Before partitions move: forget their queued records (the next owner reads them from
        the committed offset) and let the batches already collected finish and commit."""
        self.assigned.clear()
        self._drop_queued(lambda w: w.tp in revoked)
        deadline = time.monotonic() + _REVOKE_WAIT_S
        while any(self._outstanding[tp] > 0 for tp in revoked):
            left = deadline - time.monotonic()
            if left <= 0:
                log.warning("rebalance: in-flight batches did not commit in time")
                return
            self._committed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._committed.wait(), min(left, _POLL_MS / 1000))

    def on_assigned(self, assigned: set[TopicPartition]) -> None:
        log.info("assigned %d partitions", len(assigned))
        if assigned:
            self.assigned.set()


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, worker: Worker) -> None:
        self._worker = worker

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self._worker.on_revoked(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self._worker.on_assigned(assigned)
