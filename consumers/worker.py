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

Its parts: `Fetcher` (consumer, decode pool, backpressure, commits), `InFlight` (queue, batch
slots, commit gate), `Scoring` (engine and head), `Outputs` (sinks); the worker owns the loop and
the order decode -> batch -> embed -> head -> sinks -> commit.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable

from aiokafka import ConsumerRebalanceListener
from aiokafka.structs import TopicPartition

from consumers.fetch import Fetcher
from consumers.inflight import InFlight
from consumers.metrics import WorkerMetrics
from consumers.outputs import Outputs
from consumers.scoring import Scoring
from consumers.work import BatchResult, failure_reason
from harclip.adapt.holder import AdapterHolder
from harclip.batching import collect_batch
from harclip.config import Settings
from harclip.control import HeadHolder
from harclip.health import HealthServer
from harclip.io.indices import EmbeddingSpace
from harclip.io.topics import ensure_topics
from harclip.messages import now_ms
from harclip.model.bundle import Bundle
from harclip.watches.holder import WatchHolder

log = logging.getLogger(__name__)

_IDLE_S = 0.1  # engine thread: longest wait for a first item or a free slot, seconds
_REVOKE_WAIT_S = 20.0  # on rebalance: longest wait for in-flight batches to commit, seconds
_SHUTDOWN_GRACE_S = 30.0  # on stop: longest retry of a sink that is down, seconds


class Worker:
    """One inference worker process' state; `await run(stop)` until `stop` is set."""

    def __init__(self, settings: Settings, bundle: Bundle) -> None:
        self.settings = settings
        self.bundle = bundle
        self.metrics = WorkerMetrics()
        b, m = settings.batching, bundle.manifest
        self._inflight = InFlight(b.max_batch, b.max_inflight_batches if b.pipelined else 1)
        self._fetch = Fetcher(settings, m.image_size, self._inflight, self.metrics)
        self._scoring = Scoring(settings, bundle, self.metrics)
        space = EmbeddingSpace(m.name, str(m.version), m.embed_dim)
        self._outputs = Outputs(settings, space, self.metrics)
        self._results: asyncio.Queue[BatchResult | BaseException | None] = asyncio.Queue()
        self._halt = threading.Event()  # the engine thread stops
        self._stopping = False
        self.started = asyncio.Event()  # running: clients open, consuming
        self.assigned = asyncio.Event()  # holds partitions (set again after each rebalance)
        self._changed = asyncio.Event()  # set after every batch and head swap (see wait_for)
        self._scoring.on_change(self._changed.set)
        self._scoring.on_change(lambda: self.metrics.serve_labels(self._scoring.labels()))
        self.metrics.serve_labels(self._scoring.labels())
        ms = settings.metrics
        self._health = HealthServer(ms.host, ms.port, self.metrics.registry, self.not_ready)

    # -- state read by others ----------------------------------------------------------------

    @property
    def heads(self) -> HeadHolder:
        return self._scoring.heads

    @property
    def adapters(self) -> AdapterHolder:
        return self._scoring.adapters

    @property
    def watches(self) -> WatchHolder:
        return self._scoring.watches

    @property
    def health_port(self) -> int:
        return self._health.port

    def not_ready(self) -> list[str]:
        """What keeps this worker from being ready (empty: ready)."""
        out = []
        if not self.started.is_set():
            out.append("starting")
        out += [f"sink {name} unavailable (retrying)" for name in sorted(self._outputs.trouble)]
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
        await self._scoring.load()
        await ensure_topics(s.kafka)
        await self._outputs.start(self._changed.set)
        await self._scoring.control.catch_up()  # the first batch uses the newest head
        if s.metrics.enabled:
            await self._health.start()
        await self._fetch.start(_Rebalance(self))
        self.started.set()
        self.metrics.ready.set(1)
        log.info("worker up: engine %s, model %s v%s, head v%d, batch <= %d, wait %g ms",
                 self._scoring.engine.label, self.bundle.manifest.name,
                 self.bundle.manifest.version, self.heads.head.version, s.batching.max_batch,
                 s.batching.max_wait_ms)  # fmt: skip

    async def _loop(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        engine_thread = threading.Thread(
            target=self._engine_loop, args=(loop,), name="engine", daemon=True
        )
        engine_thread.start()
        fetch = asyncio.create_task(
            self._fetch.run(lambda: self._stopping, self._hold, self._scoring.decoder),
            name="fetch",
        )
        sinks = asyncio.create_task(self._sink_loop(), name="sinks")
        follow = asyncio.create_task(self._scoring.control.run(stop), name="control")
        stopped = asyncio.create_task(stop.wait(), name="stop")
        done, _ = await asyncio.wait(
            {fetch, sinks, follow, stopped}, return_when=asyncio.FIRST_COMPLETED
        )
        log.info("worker stopping: finishing in-flight batches")
        self._stopping = True
        self._outputs.give_up_at(time.monotonic() + _SHUTDOWN_GRACE_S)
        stop.set()
        await asyncio.gather(fetch, return_exceptions=True)
        self._inflight.drop_queued(lambda _: True)
        self._halt.set()
        self._inflight.queue.wake()
        await asyncio.gather(sinks, follow, return_exceptions=True)
        await asyncio.to_thread(engine_thread.join)
        for task in (fetch, sinks, follow):  # a stage that crashed: re-raise its error
            if task in done and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]

    async def _close(self) -> None:
        await self._fetch.stop()  # leaves the group
        await self._outputs.stop()
        await self._health.stop()
        await self._scoring.close()
        self._fetch.close_pool()
        self.metrics.ready.set(0)

    def _hold(self) -> bool:
        """Fetch nothing new: a sink is down, or (per-frame mode) the last batch is not yet
        committed."""
        waiting = not self.settings.batching.pipelined and self._inflight.pending > 0
        return bool(self._outputs.trouble) or waiting

    # -- the engine thread: batch -> embed -> head -----------------------------------------------

    def _engine_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        b = self.settings.batching
        queue, slots = self._inflight.queue, self._inflight.slots
        try:
            while not self._halt.is_set():
                if not slots.acquire(timeout=_IDLE_S):
                    continue
                batch = collect_batch(
                    queue, b.max_batch, b.max_wait_ms / 1000, b.max_age_ms / 1000,
                    first_timeout_s=_IDLE_S,
                )  # fmt: skip
                if batch.empty:
                    slots.release()
                    continue
                loop.call_soon_threadsafe(self._fetch.freed)  # room in the queue: fetch more
                result = self._scoring.score(batch)
                loop.call_soon_threadsafe(self._results.put_nowait, result)
        except BaseException as e:  # a bug: the sink loop re-raises it in the event loop
            loop.call_soon_threadsafe(self._results.put_nowait, e)
        finally:
            loop.call_soon_threadsafe(self._results.put_nowait, None)

    # -- sinks -> commit, batches in order --------------------------------------------------------

    async def _sink_loop(self) -> None:
        while True:
            item = await self._results.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            delivered = await self._outputs.deliver(item)
            offsets = self._inflight.offsets(item, delivered, self._fetch.assignment)
            await self._fetch.commit(offsets)
            self._account(item, delivered)
            self._inflight.slots.release()
            self._fetch.freed()  # a hold may have ended: fetch again without waiting a poll

    def _account(self, result: BatchResult, delivered: bool) -> None:
        m = self.metrics
        self._inflight.settle(result)
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

    async def on_revoked(self, revoked: set[TopicPartition]) -> None:
        """Before partitions move: forget their queued records (the next owner reads them from
        the committed offset) and let the batches already collected finish and commit."""
        self.assigned.clear()
        self._inflight.drop_queued(lambda w: w.tp in revoked)
        if not await self._inflight.wait_settled(revoked, _REVOKE_WAIT_S):
            log.warning("rebalance: in-flight batches did not commit in time")

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
