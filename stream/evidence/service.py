"""The evidence consumer: its own aiokafka consumer on harclip.events (group
`<app_id>-evidence`, manual commits), off Faust's agents, so a slow object store or encoder never
holds back an agent.

For each batch: every event that needs evidence (`build.need`) waits until its frames exist
and, while the agents are behind, for them (bounded: `pace`), gets its objects written (retried
with backoff while the store or Kafka is down), then the same event with `evidence` set is
republished (key = stream id) and acknowledged by Kafka; only then
is the batch's offset committed. A crash does the batch again: the keys are the event's, so the
objects are the same and the republished copy has the same event_id (Elasticsearch overwrites
it, Redis deduplicates it). Events that carry `evidence` are such copies and are skipped.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaError

from harclip.config import Settings
from harclip.errors import MessageError, SinkUnavailable
from harclip.io.kafka import make_consumer, make_producer
from harclip.messages import Event, Evidence
from harclip.retry import Backoff, retry_async
from stream.evidence.build import Built, Need, need, wait_for_frames
from stream.evidence.pace import Deferral, Yielder
from stream.evidence.worker import builds
from stream.metrics import StreamMetrics

log = logging.getLogger("stream.evidence")

RETRY = Backoff(0.5, 30.0, jitter=0.2)  # store or Kafka down: evidence catches up when back
_BATCH = 100


class EvidenceService:
    """`run` as one of the runtime's background tasks (stream/application.py)."""

    def __init__(self, settings: Settings, metrics: StreamMetrics) -> None:
        self._s = settings
        self._m = metrics
        k = settings.kafka
        self._topic = k.topics.events
        self.group = f"{settings.stream.app_id}-evidence"
        self._consumer: AIOKafkaConsumer | None = None  # made in `start` (in the event loop)
        self._producer: AIOKafkaProducer | None = None
        self._builds = builds(settings)  # worker processes (or this one): read, build, write
        self._slots = asyncio.Semaphore(settings.stream.evidence_concurrency)
        s = settings.stream
        self.yielder = Yielder(
            metrics.behind,
            Deferral(s.evidence_defer_lag_s, s.evidence_defer_max_s, k.frames_retention_ms / 1000),
            on_deferring=metrics.evidence_deferring.set, on_deferred=metrics.evidence_deferred.inc,
        )  # fmt: skip

    async def start(self) -> None:
        """Connect (what started is closed again when a part fails)."""
        k = self._s.kafka
        self._producer = make_producer(k)
        self._consumer = make_consumer(
            k, self._topic, group_id=self.group, enable_auto_commit=False,
            auto_offset_reset="earliest",  # a batch may wait for the agents: the group keeps it
            max_poll_interval_ms=int((300 + self._s.stream.evidence_defer_max_s) * 1000),
        )  # fmt: skip
        try:
            await self._builds.start()
            await self._producer.start()
            await self._consumer.start()
        except BaseException as e:
            await self.stop()
            if isinstance(e, KafkaError):
                raise SinkUnavailable(f"Kafka at {k.bootstrap}: {e!r}") from e
            raise

    async def stop(self) -> None:
        closing = [self._builds.stop]
        closing[:0] = [c.stop for c in (self._consumer, self._producer) if c is not None]
        for close in closing:
            try:
                await close()
            except Exception as e:
                log.warning("closing the evidence step: %r", e)
        self._consumer = self._producer = None

    async def run(self) -> None:
        """Until cancelled: connect (retried while Kafka or the store is down), then batches of
        events -> evidence -> republished -> committed; closes when cancelled."""
        await retry_async(self.start, RETRY, on_retry=self._failed)
        try:
            await self._follow()
        finally:
            await self.stop()

    async def _follow(self) -> None:
        assert self._consumer is not None
        while True:
            batches = await self._consumer.getmany(timeout_ms=1000, max_records=_BATCH)
            records = [r for recs in batches.values() for r in recs]
            if not records:
                continue
            events = []
            for r in records:
                try:
                    events.append(Event.from_json(r.value or b""))
                except MessageError:
                    continue  # the outputs agent logs malformed events
            todo = [(e, n) for e in events if (n := need(e, self._s.stream)) is not None]
            self._m.evidence_backlog.inc(len(todo))
            await asyncio.gather(*(self._one(e, n) for e, n in todo))
            await retry_async(self._commit, RETRY, on_retry=self._failed)

    async def _commit(self) -> None:
        assert self._consumer is not None
        try:
            await self._consumer.commit()
        except KafkaError as e:
            raise SinkUnavailable(f"commit of {self.group}: {e!r}") from e

    async def _one(self, e: Event, n: Need) -> None:
        try:
            await wait_for_frames(self._s.stream, n)
            await self.yielder.wait(n.window.start)  # the agents first while they are behind
            async with self._slots:
                try:
                    built = await retry_async(lambda: self._builds.build(e, n), RETRY,
                                              on_retry=self._failed)  # fmt: skip
                except Exception as err:  # refused for good, or frames the encoder refuses
                    log.error("evidence of event %s failed: %r", e.event_id, err)
                    built = Built(Evidence(missing="failed"))
            ev = built.evidence
            self._m.evidence_corrupt.inc(built.corrupt)
            if built.clip_s is not None:
                self._m.evidence_clip_seconds.observe(built.clip_s)
            done = e.model_copy(update={"evidence": ev})
            await retry_async(lambda: self._publish(done), RETRY, on_retry=self._failed)
        finally:
            self._m.evidence_backlog.dec()
        if ev.missing is None:
            self._m.evidence_written.labels(e.type).inc()
        else:
            self._m.evidence_missing.labels(ev.missing).inc()

    async def _publish(self, e: Event) -> None:
        assert self._producer is not None
        try:
            await self._producer.send_and_wait(self._topic, e.to_json(), key=e.stream_id.encode())
        except KafkaError as err:
            raise SinkUnavailable(f"republishing event {e.event_id}: {err!r}") from err

    def _failed(self, e: Exception, pause_s: float) -> None:
        self._m.evidence_errors.inc()
        log.warning("evidence: %s; again in %.1f s", e, pause_s)


def evidence_tasks(
    settings: Settings, metrics: StreamMetrics
) -> dict[str, Coroutine[Any, Any, None]]:
    """The evidence step as the runtime's background task; none when `stream.evidence` is off or
    the object store disabled (events keep `evidence` None, nothing is republished)."""
    if not (settings.stream.evidence and settings.objects.enabled):
        return {}
    return {"evidence": EvidenceService(settings, metrics).run()}
