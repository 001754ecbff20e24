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
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener
from aiokafka.errors import KafkaError
from aiokafka.structs import TopicPartition

from consumers.control import ControlFollower
from consumers.health import HealthServer
from consumers.inference import BatchResult, Predicted, run_batch
from consumers.metrics import WorkerMetrics
from consumers.sinks import ElasticsearchSink, KafkaSink, RedisSink, Sink, SinkRefused
from consumers.work import BULK, LIVE, Work, decode_records, failure_reason
from harclip.batching import TwoLaneQueue, collect_batch
from harclip.config import EngineName, Settings
from harclip.engines import Engine, create_engine
from harclip.errors import ModelError, SinkUnavailable
from harclip.io.kafka import ensure_topics, make_consumer
from harclip.messages import ModelRef, now_ms
from harclip.model.bundle import Bundle
from harclip.model.head import Head

log = logging.getLogger(__name__)

_POLL_MS = 100  # longest getmany wait, ms: how quickly the fetch loop notices a change
_IDLE_S = 0.1  # engine thread: longest wait for a first item or a free slot, seconds
_BACKOFF_S = (0.1, 5.0)  # sink retry: first and longest pause, seconds
_REVOKE_WAIT_S = 20.0  # on rebalance: longest wait for in-flight batches to commit, seconds
_SHUTDOWN_GRACE_S = 30.0  # on stop: longest retry of a sink that is down, seconds
_LAG_EVERY_S = 2.0


class Worker:
    """One inference worker process' state; `await run(stop)` until `stop` is set."""

    def __init__(
        self,
        settings: Settings,
        bundle: Bundle,
        *,
        engine: EngineName | None = None,
        partitions: int | None = None,
        pipelined: bool = True,
        metrics_port: int | None = None,
    ) -> None:
        self.settings = settings
        self.bundle = bundle
        self.engine_name: EngineName = engine or settings.model.engine
        self.partitions = partitions
        self.pipelined = pipelined
        self.metrics = WorkerMetrics()
        b = settings.batching
        self._queue: TwoLaneQueue[Work] = TwoLaneQueue(capacity=2 * b.max_batch)
        self._slots = threading.Semaphore(b.max_inflight_batches if pipelined else 1)
        self._halt = threading.Event()
        self._results: asyncio.Queue[BatchResult | BaseException | None] = asyncio.Queue()
        self._outstanding: Counter[TopicPartition] = Counter()  # queued or in a batch
        self._committed = asyncio.Event()  # set after each batch is accounted for
        self._last_committed: dict[TopicPartition, int] = {}
        self._decode_pool = ThreadPoolExecutor(b.decode_threads, thread_name_prefix="decode")
        self._engine: Engine | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._kafka: KafkaSink | None = None  # also the DLQ writer
        self._sinks: list[Sink] = []
        self._sink_trouble: set[str] = set()
        self._stopping = False
        self._give_up_at: float | None = None
        self.head: Head = bundle.load_head()
        self.started = asyncio.Event()  # running: clients open, consuming
        self.assigned = asyncio.Event()  # holds partitions (set again after each rebalance)
        self._changed = asyncio.Event()  # set after every batch and head swap (see wait_for)
        self.predicted = 0
        self.failed = 0
        self.dropped = 0
        # metrics.port 0 is "off"; an explicit `metrics_port` (0: any free port) always serves
        self._serve_health = metrics_port is not None or settings.metrics.port != 0
        self._health = HealthServer(
            settings.metrics.host,
            settings.metrics.port if metrics_port is None else metrics_port,
            self.metrics.registry,
            self.not_ready,
        )

    # -- state read by others ----------------------------------------------------------------

    @property
    def health_port(self) -> int:
        return self._health.port

    def not_ready(self) -> list[str]:
        """What keeps this worker from being ready (empty: ready)."""
        out = []
        if not self.started.is_set():
            out.append("starting")
        out += [f"sink {name} unavailable (retrying)" for name in sorted(self._sink_trouble)]
        if self._stopping:
            out.append("stopping")
        return out

    async def wait_for(self, condition: Callable[[], bool], timeout_s: float) -> None:
        """Return once `condition()` holds, re-checked after every batch and head swap;
        `TimeoutError` after `timeout_s` seconds."""
        async with asyncio.timeout(timeout_s):
            while True:
                self._changed.clear()
                if condition():
                    return
                await self._changed.wait()

    def set_head(self, head: Head) -> None:
        """Use `head` from the next batch on if it is newer and fits the model."""
        if head.version <= self.head.version:
            return
        if head.embed_dim != self.bundle.manifest.embed_dim:
            log.warning("ignoring head %d: %d-dim, the model makes %d", head.version,
                        head.embed_dim, self.bundle.manifest.embed_dim)  # fmt: skip
            return
        self.head = head  # one reference swap: the engine thread reads it once per batch
        self.metrics.head_version.set(head.version)
        self._changed.set()
        log.info("head version %d in use (%d labels)", head.version, len(head.labels))

    # -- lifecycle ------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Start, process until `stop` is set, then finish the in-flight batches, commit and
        leave the group. Start-up errors (`ConfigError`, `ModelError`, `SinkUnavailable`) raise."""
        control = ControlFollower(self.settings.kafka, self.set_head)
        try:
            await self._start(control)
            await self._loop(stop, control)
        finally:
            await self._close(control)

    async def _start(self, control: ControlFollower) -> None:
        s = self.settings
        self._engine = await asyncio.to_thread(
            create_engine, self.bundle, self.engine_name, s.model
        )
        if self._engine.embed_dim != self.head.embed_dim:
            raise ModelError(f"the head is {self.head.embed_dim}-dim, the engine makes "
                             f"{self._engine.embed_dim}")  # fmt: skip
        self.metrics.head_version.set(self.head.version)
        created = await ensure_topics(s.kafka, partitions=self.partitions)
        if created:
            log.info("created topics %s", ", ".join(created))
        self._kafka = KafkaSink(s.kafka)
        self._sinks = [self._kafka]
        if s.redis.enabled:
            self._sinks.append(RedisSink(s.redis))
        if s.elasticsearch.enabled:
            self._sinks.append(ElasticsearchSink(s.elasticsearch, self.bundle.manifest.embed_dim))
        for sink in self._sinks:
            await sink.start()
        await control.start()
        if self._serve_health:
            await self._health.start()
        t = s.kafka.topics
        self._consumer = make_consumer(s.kafka)
        self._consumer.subscribe([t.frames, t.uploads], listener=_Rebalance(self))
        try:
            await self._consumer.start()
        except KafkaError as e:
            raise SinkUnavailable(f"Kafka at {s.kafka.bootstrap}: {e!r}") from e
        self.started.set()
        self.metrics.ready.set(1)
        log.info("worker up: engine %s, model %s v%s, head v%d, batch <= %d, wait %g ms",
                 self.engine_name, self.bundle.manifest.name, self.bundle.manifest.version,
                 self.head.version, s.batching.max_batch, s.batching.max_wait_ms)  # fmt: skip

    async def _loop(self, stop: asyncio.Event, control: ControlFollower) -> None:
        loop = asyncio.get_running_loop()
        engine_thread = threading.Thread(
            target=self._engine_loop, args=(loop,), name="engine", daemon=True
        )
        engine_thread.start()
        fetch = asyncio.create_task(self._fetch_loop(), name="fetch")
        sinks = asyncio.create_task(self._sink_loop(), name="sinks")
        follow = asyncio.create_task(control.run(stop), name="control")
        stopped = asyncio.create_task(stop.wait(), name="stop")
        done, _ = await asyncio.wait(
            {fetch, sinks, follow, stopped}, return_when=asyncio.FIRST_COMPLETED
        )
        log.info("worker stopping: finishing in-flight batches")
        self._stopping = True
        self._give_up_at = time.monotonic() + _SHUTDOWN_GRACE_S
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

    async def _close(self, control: ControlFollower) -> None:
        if self._consumer is not None:
            await self._consumer.stop()  # leaves the group
        for sink in self._sinks:
            await sink.stop()
        await control.stop()
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
        loop = asyncio.get_running_loop()
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
                works = await self._decode(loop, records, lane, size, max_pixels)
                if tp not in c.assignment():
                    continue  # revoked meanwhile: the new owner reads them again
                for w in works:
                    self._queue.put(w, lane)
                self._outstanding[tp] += len(works)
            if time.monotonic() >= next_lag:
                next_lag = time.monotonic() + _LAG_EVERY_S
                self._update_lag()

    async def _decode(
        self, loop: asyncio.AbstractEventLoop, records: list[Any], lane: int, size: int,
        max_pixels: int,
    ) -> list[Work]:  # fmt: skip
        n = max(1, -(-len(records) // self.settings.batching.decode_threads))
        chunks = [records[i : i + n] for i in range(0, len(records), n)]
        parts = await asyncio.gather(*(
            loop.run_in_executor(self._decode_pool, decode_records, ch, lane, size, max_pixels)
            for ch in chunks
        ))  # fmt: skip
        return [w for part in parts for w in part]

    def _backpressure(self, hold: bool) -> int:
        """Pause the partitions of full lanes (all of them while a sink is down or `hold`),
        resume the others; returns how many records the next fetch may bring."""
        assert self._consumer is not None
        c = self._consumer
        assigned = c.assignment()
        live_topic = self.settings.kafka.topics.frames
        rooms = {LIVE: self._queue.room(LIVE), BULK: self._queue.room(BULK)}
        if self._sink_trouble or hold:
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

    def _update_lag(self) -> None:
        """Records between the last commit and the log end, per topic."""
        assert self._consumer is not None
        c = self._consumer
        lag: Counter[str] = Counter()
        for tp in c.assignment():
            end, done = c.highwater(tp), self._last_committed.get(tp)
            if end is not None and done is not None:
                lag[tp.topic] += max(0, end - done)
        for topic, n in lag.items():
            self.metrics.lag.labels(topic).set(n)

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
                head = self.head  # one head per batch
                result = run_batch(batch, self._engine, head, self.model_ref_for(head), k)
                loop.call_soon_threadsafe(self._results.put_nowait, result)
        except BaseException as e:  # a bug: the sink loop re-raises it in the event loop
            loop.call_soon_threadsafe(self._results.put_nowait, e)
        finally:
            loop.call_soon_threadsafe(self._results.put_nowait, None)

    def model_ref_for(self, head: Head) -> ModelRef:
        m = self.bundle.manifest
        return ModelRef(name=m.name, version=str(m.version), head_version=head.version)

    # -- stage 3: sinks + commit -------------------------------------------------------------

    async def _sink_loop(self) -> None:
        while True:
            item = await self._results.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            delivered = await self._deliver(item)
            if delivered:
                await self._commit(item)
            self._account(item, delivered)
            self._slots.release()

    async def _deliver(self, result: BatchResult) -> bool:
        """Flush every sink until all acknowledged. The one decision point for sink errors:
        a retriable failure is retried with backoff for the failed sinks only (fetching pauses
        meanwhile); frames a sink refused for good go to the DLQ, which must acknowledge too.
        False if stopping and a sink stayed down."""
        assert self._kafka is not None
        pending = list(self._sinks)
        for sink in pending:
            sink.add(result)
        delay = _BACKOFF_S[0]
        while True:
            outcomes = await asyncio.gather(*(s.flush() for s in pending), return_exceptions=True)
            failed: list[Sink] = []
            dead: list[Work] = []
            for sink, out in zip(pending, outcomes, strict=True):
                if out is None:
                    continue
                if not isinstance(out, SinkUnavailable):
                    raise out
                self.metrics.sink_errors.labels(sink.name).inc()
                if out.retriable:
                    failed.append(sink)
                    log.warning("sink %s: %s; retrying in %.1f s", sink.name, out, delay)
                else:  # refused for good: retrying cannot help; those frames go to the DLQ
                    sink.clear()
                    refused = out.frames if isinstance(out, SinkRefused) else None
                    moved = dead_letter(result, sink.name, refused, str(out))
                    log.error("sink %s refused %d frames (to the DLQ): %s", sink.name,
                              len(moved), out)  # fmt: skip
                    dead += moved
            self._sink_trouble = {s.name for s in failed}
            if dead:
                self._kafka.dead_letter(dead)
            pending = failed + ([self._kafka] if dead and self._kafka not in failed else [])
            if not pending:
                return True
            if not failed:
                continue  # only the new DLQ records to write: no backoff
            if self._give_up_at is not None and time.monotonic() > self._give_up_at:
                log.error("giving up on sinks %s at shutdown: the batch stays uncommitted",
                          ", ".join(self._sink_trouble))  # fmt: skip
                for sink in pending:
                    sink.clear()
                return False
            await asyncio.sleep(delay)
            delay = min(delay * 2, _BACKOFF_S[1])

    async def _commit(self, result: BatchResult) -> None:
        assert self._consumer is not None
        assigned = self._consumer.assignment()
        offsets = {tp: o for tp, o in result.offsets().items() if tp in assigned}
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
            self.dropped += len(result.stale)
        for w in result.failed:
            m.failed.labels(failure_reason(w.error)).inc()
        self.failed += len(result.failed)
        if not delivered or not (result.predicted or result.failed):
            return
        m.batch_size.observe(len(result.predicted) + len(result.failed))
        m.infer_latency.observe(result.infer_s)
        done = now_ms()
        for p in result.predicted:
            m.queue_latency.observe(p.prediction.latency_ms.queue / 1000)
            m.e2e_latency.observe(max(0, done - p.prediction.captured_at) / 1000)
        m.predicted.inc(len(result.predicted))
        self.predicted += len(result.predicted)

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


def dead_letter(
    result: BatchResult, sink: str, refused: dict[str, str] | None, reason: str
) -> list[Work]:
    """Move the frames `sink` refused for good (frame_id -> reason; None: all of the batch's
    predicted frames, for `reason`) from `result.predicted` to `result.failed`, their `error`
    set for the DLQ; returns them. Frames already moved are not moved twice."""
    keep: list[Predicted] = []
    dead: list[Work] = []
    for p in result.predicted:
        why = reason if refused is None else refused.get(p.prediction.frame_id)
        if why is None:
            keep.append(p)
            continue
        p.work.error = f"sink {sink} refused: {why}"
        dead.append(p.work)
    result.predicted = keep
    result.failed += dead
    return dead


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, worker: Worker) -> None:
        self._worker = worker

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self._worker.on_revoked(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self._worker.on_assigned(assigned)
