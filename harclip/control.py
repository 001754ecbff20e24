"""The control topic (`harclip.control`, compacted, one partition): what every deployable learns at
run time without a restart. Keys: `head` (a classification head, `Head.to_control()` JSON) and
`rules` (alert rules of the events app), `watches` (the watches in force, a
`harclip.watches.WatchSet`) and `adapter` (the feedback cache adapter in force).

One owner of the protocol: `ControlFollower` reads the topic from the beginning and hands each
record to the handler of its key - first catching up to the end (so a worker's first batch and an
API's first answer use the newest head), then following new records. `HeadHolder` is the one rule
for accepting a head, used by the worker and the API alike; `publish` writes a record.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaError
from aiokafka.structs import TopicPartition
from prometheus_client import CollectorRegistry, Counter, Gauge

from harclip.config import KafkaSettings
from harclip.errors import MessageError, Unavailable
from harclip.io.kafka import make_consumer
from harclip.io.topics import ensure_topics
from harclip.messages import ModelRef
from harclip.model.bundle import Manifest
from harclip.model.head import Head
from harclip.retry import Attempts, Backoff

log = logging.getLogger(__name__)

HEAD_KEY = b"head"
RULES_KEY = b"rules"
WATCHES_KEY = b"watches"  # a WatchSet (harclip.watches.spec)
ADAPTER_KEY = b"adapter"  # the feedback cache adapter in force (harclip.adapt)

_POLL_MS = 500  # longest wait of one read, ms
_RECONNECT = Backoff(0.5, 10.0)  # after a Kafka failure: first and longest pause, seconds

Handler = Callable[[bytes], None]


class ControlMetrics:
    """The control metrics of one process, in the registry it exports."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.refused = Counter(
            "harclip_control_refused",
            "control records refused (never applied), by key and reason",
            ["key", "reason"],
            registry=registry,
        )
        self.head_version = Gauge("harclip_head_version", "head version in use", registry=registry)
        self.adapter_version = Gauge(
            "harclip_adapter_version", "feedback adapter in use (0: none)", registry=registry
        )
        self.watches_version = Gauge(
            "harclip_watches_version", "version of the watch set in use", registry=registry
        )
        self.watches = Gauge("harclip_watches", "watches in force", registry=registry)


@dataclass(frozen=True, slots=True)
class HeadInUse:
    """A head and the model reference every Prediction made with it carries (one snapshot)."""

    head: Head
    model: ModelRef


class HeadHolder:
    """The head a process predicts with, swapped as newer heads arrive.

    The one rule for a head from anywhere (control topic, API, CLI): a version not newer than the
    current one is ignored (replays while catching up); a head whose embedding size differs from
    the model's is refused, logged and counted, never applied. Readers take `current` once per
    batch: one reference swap, safe across threads.
    """

    def __init__(
        self, manifest: Manifest, head: Head, metrics: ControlMetrics, engine: str | None = None
    ) -> None:
        self._manifest = manifest
        self._metrics = metrics
        self._engine = engine
        self._current = self._in_use(head)
        self._changed: list[Callable[[HeadInUse], None]] = []
        metrics.head_version.set(head.version)

    @property
    def current(self) -> HeadInUse:
        return self._current

    @property
    def head(self) -> Head:
        return self._current.head

    def use_engine(self, label: str) -> None:
        """Name `label` (the running engine's `label`) in every ModelRef from the next batch on;
        called once the engine is loaded (`engine: auto` resolves only then)."""
        self._engine = label
        self._current = self._in_use(self._current.head)

    def on_change(self, callback: Callable[[HeadInUse], None]) -> None:
        """Call `callback(new)` after every swap (in the thread that offered the head)."""
        self._changed.append(callback)

    def offer(self, head: Head) -> bool:
        """Use `head` from the next batch on if it is newer and fits the model; True if swapped."""
        if head.version <= self._current.head.version:
            return False
        dim = self._manifest.embed_dim
        if head.embed_dim != dim:
            self._refuse(f"head v{head.version} is {head.embed_dim}-dim, the model makes {dim}")
            return False
        self._current = new = self._in_use(head)
        self._metrics.head_version.set(head.version)
        log.info("head version %d in use (%d labels)", head.version, len(head.labels))
        for callback in self._changed:
            callback(new)
        return True

    def offer_raw(self, raw: bytes) -> None:
        """A `head` record from the control topic: parsed, then offered; refused if malformed."""
        try:
            head = Head.from_control(raw)
        except MessageError as e:
            self._refuse(str(e), reason="malformed")
            return
        self.offer(head)

    def _refuse(self, why: str, reason: str = "embed_dim") -> None:
        self._metrics.refused.labels("head", reason).inc()
        log.warning("refused a head: %s", why)

    def _in_use(self, head: Head) -> HeadInUse:
        m = self._manifest
        ref = ModelRef(
            name=m.name, version=str(m.version), head_version=head.version, engine=self._engine
        )
        return HeadInUse(head, ref)


class ControlFollower:
    """Reads the control topic without a consumer group (every process sees every record) and
    calls `handlers[key](value)` for each record in order. Records of other keys are skipped.

    `catch_up()` reads everything up to the current end; `run(stop)` then follows, reconnecting
    with backoff when Kafka fails. A handler must not raise for bad input (it refuses and counts).
    """

    def __init__(self, s: KafkaSettings, handlers: Mapping[bytes, Handler]) -> None:
        self._s = s
        self._handlers = dict(handlers)
        self._consumer: AIOKafkaConsumer | None = None
        self._tp = TopicPartition(s.topics.control, 0)  # the control topic has one partition
        self._next = 0  # offset of the next record to hand over
        self.caught_up = asyncio.Event()

    async def catch_up(self, timeout_s: float | None = None) -> None:
        """Connect (creating the topic if missing) and hand over every record up to the end.
        `Unavailable` when Kafka does not answer within `timeout_s` seconds (None: the
        request timeouts of `KafkaSettings`); what was read so far stays applied."""
        try:
            async with asyncio.timeout(timeout_s):
                await self._connect()
                assert self._consumer is not None
                end = (await self._consumer.end_offsets([self._tp]))[self._tp]
                while self._next < end:
                    await self._poll()
        except (KafkaError, OSError, TimeoutError) as e:
            await self._disconnect()
            where = f"{self._tp.topic} at {self._s.bootstrap}"
            raise Unavailable(f"cannot read {where}: {e!r}") from e
        self.caught_up.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Follow new records until `stop` is set; (re)connects and catches up as needed."""
        attempts = Attempts(_RECONNECT)
        while not stop.is_set():
            try:
                if self._consumer is None:
                    await self.catch_up()
                await self._poll()
                attempts.succeeded()
            except (KafkaError, OSError, Unavailable) as e:
                await self._disconnect()
                delay = attempts.failed() or 0.0
                log.warning("cannot follow %s (%s); retrying in %.1f s", self._tp.topic, e, delay)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)

    async def stop(self) -> None:
        await self._disconnect()

    async def _connect(self) -> None:
        if self._consumer is not None:
            return
        await ensure_topics(self._s)
        consumer = make_consumer(self._s, group_id=None)
        try:
            await consumer.start()
        except BaseException:
            await consumer.stop()
            raise
        consumer.assign([self._tp])
        consumer.seek(self._tp, self._next)
        self._consumer = consumer

    async def _disconnect(self) -> None:
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            await consumer.stop()

    async def _poll(self) -> None:
        assert self._consumer is not None
        batches = await self._consumer.getmany(self._tp, timeout_ms=_POLL_MS)
        for rec in batches.get(self._tp, []):
            self._next = rec.offset + 1
            handler = self._handlers.get(rec.key or b"")
            if handler is not None and rec.value:
                handler(rec.value)
        if not batches:  # a compacted topic may end in a gap: the position is the truth
            self._next = max(self._next, await self._consumer.position(self._tp))


async def publish(producer: AIOKafkaProducer, s: KafkaSettings, key: bytes, value: bytes) -> None:
    """Write one control record and wait until the broker has it (acks=all)."""
    try:
        await producer.send_and_wait(s.topics.control, value, key=key)
    except KafkaError as e:
        raise Unavailable(f"cannot publish {key.decode()} on {s.topics.control}: {e!r}") from e
