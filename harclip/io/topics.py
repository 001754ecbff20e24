"""The project's Kafka topics: their specs (DESIGN.md), and the one function that creates them.

Brokers never create topics on first use here (the local broker runs with auto-creation off): a
topic made by the broker gets the broker's partition count, so live cameras could never spread
over more than one worker. Every producer, worker and the API call `ensure_topics` before they
write; it is idempotent, and `harclip topics create|describe` runs it by hand.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewPartitions, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError, for_code

from harclip.config import KafkaSettings
from harclip.errors import ConfigError, Unavailable
from harclip.io.kafka import ProducerRole, RenewingProducer, make_admin, make_producer

log = logging.getLogger(__name__)

_READY_WAIT_S = 10.0  # after creating: longest wait until every partition has a leader, seconds


def topic_specs(s: KafkaSettings, *, partitions: int | None = None) -> list[NewTopic]:
    """The six topics of DESIGN.md with their configs (pure; `ensure_topics` creates them)."""
    n = s.partitions if partitions is None else partitions
    if n < 1:
        raise ConfigError(f"partitions must be >= 1, got {n}")
    t = s.topics
    common = {"max.message.bytes": str(s.max_message_bytes)}
    configs: dict[str, dict[str, str]] = {
        t.frames: {**common, "retention.ms": str(s.frames_retention_ms)},
        t.uploads: common,
        t.predictions: common,
        t.events: common,
        t.dlq: common,
        t.control: {**common, "cleanup.policy": "compact"},
    }
    return [
        NewTopic(
            name,
            num_partitions=1 if name == t.control else n,
            replication_factor=s.replication_factor,
            topic_configs=cfg,
        )
        for name, cfg in configs.items()
    ]


@dataclass(frozen=True, slots=True)
class TopicState:
    name: str
    partitions: int  # 0: the topic does not exist
    wanted: int


@dataclass
class TopicsReport:
    """What `ensure_topics` found and did."""

    created: list[str] = field(default_factory=list)
    grown: list[str] = field(default_factory=list)  # partitions added
    short: list[TopicState] = field(default_factory=list)  # fewer partitions than configured

    def warnings(self) -> list[str]:
        return [
            f"topic {t.name} has {t.partitions} partitions, {t.wanted} configured: at most "
            f"{t.partitions} consumers share it (add partitions with `harclip topics create "
            "--add-partitions`, or HARCLIP_KAFKA__ADD_PARTITIONS=true)"
            for t in self.short
        ]


async def ensure_topics(
    s: KafkaSettings,
    *,
    partitions: int | None = None,
    add_partitions: bool | None = None,
    extra: Sequence[NewTopic] = (),
) -> TopicsReport:
    """Create whichever of the six topics (and of a deployable's `extra` topics, with their own
    partitions and configs) are missing, and wait until they can be written. A topic with fewer
    partitions than configured is reported (and logged), or grown when `add_partitions` (default
    `s.add_partitions`) allows it - that moves keys to other partitions, so per-stream order
    holds only from then on.

    Idempotent: topics that exist (or that another process creates meanwhile: Kafka's
    `TopicAlreadyExistsError`) keep their settings.
    `Unavailable` when Kafka does not answer, `ConfigError` when it refuses a topic.
    """
    grow = s.add_partitions if add_partitions is None else add_partitions
    specs = [*topic_specs(s, partitions=partitions), *extra]
    report = TopicsReport()
    admin = make_admin(s)
    try:
        await admin.start()
        found = await _partition_counts(admin, [spec.name for spec in specs])
        missing = [spec for spec in specs if found[spec.name] == 0]
        if missing:
            response = await admin.create_topics(missing, timeout_ms=s.request_timeout_ms)
            report.created = _created(response.topic_errors)
        short = [
            TopicState(spec.name, found[spec.name], spec.num_partitions)
            for spec in specs
            if 0 < found[spec.name] < spec.num_partitions
        ]
        if short and grow:
            await admin.create_partitions(
                {t.name: NewPartitions(t.wanted) for t in short}, timeout_ms=s.request_timeout_ms
            )
            report.grown = [t.name for t in short]
        else:
            report.short = short
        if report.created or report.grown:
            await _wait_leaders(admin, {spec.name: spec.num_partitions for spec in specs})
    except KafkaError as e:
        raise Unavailable(f"Kafka at {s.bootstrap}: cannot create topics: {e!r}") from e
    finally:
        await admin.close()
    if report.created:
        log.info("created topics %s", ", ".join(report.created))
    if report.grown:
        log.warning("added partitions to %s", ", ".join(report.grown))
    for line in report.warnings():
        log.warning("%s", line)
    return report


async def start_producer(s: KafkaSettings, *, role: ProducerRole = "sink") -> AIOKafkaProducer:
    """A started producer for `role`, once every topic exists (`ensure_topics`); `Unavailable`
    when Kafka does not answer. The caller stops it."""
    await ensure_topics(s)
    producer = make_producer(s, role=role)
    try:
        await producer.start()
    except (KafkaError, OSError) as e:
        await producer.stop()
        raise Unavailable(f"Kafka at {s.bootstrap} is unavailable: {e!r}") from None
    return producer


async def start_frame_producer(
    s: KafkaSettings, *, role: ProducerRole = "live"
) -> RenewingProducer:
    """`start_producer` wrapped in a `RenewingProducer` (frames survive a broker restart that
    breaks the idempotent producer's sequence)."""
    return RenewingProducer(
        await start_producer(s, role=role), lambda: start_producer(s, role=role)
    )


async def describe_topics(s: KafkaSettings) -> list[TopicState]:
    """The project's topics: partitions found (0: missing) and configured."""
    specs = topic_specs(s)
    admin = make_admin(s)
    try:
        await admin.start()
        found = await _partition_counts(admin, [spec.name for spec in specs])
    except KafkaError as e:
        raise Unavailable(f"Kafka at {s.bootstrap}: {e!r}") from e
    finally:
        await admin.close()
    return [TopicState(spec.name, found[spec.name], spec.num_partitions) for spec in specs]


async def _partition_counts(admin: AIOKafkaAdminClient, names: list[str]) -> dict[str, int]:
    """Partitions per topic (0 for a missing one), from one metadata request."""
    out = dict.fromkeys(names, 0)
    for t in await admin.describe_topics(names):
        if t["error_code"] == 0:
            out[t["topic"]] = len(t["partitions"])
    return out


def _created(topic_errors: list[tuple[object, ...]]) -> list[str]:
    created: list[str] = []
    refused: list[str] = []
    for name, code, *rest in topic_errors:
        if code == 0:
            created.append(str(name))
        elif not (isinstance(code, int) and for_code(code) is TopicAlreadyExistsError):
            message = rest[0] if rest and rest[0] else f"error code {code}"
            refused.append(f"{name}: {message}")
    if refused:
        raise ConfigError("Kafka refused to create topics: " + "; ".join(refused))
    return created


async def _wait_leaders(admin: AIOKafkaAdminClient, wanted: dict[str, int]) -> None:
    """Until every partition of `wanted` has a leader (a new topic takes a moment to be
    writable; a producer that came first would log "not found in cluster metadata")."""
    deadline = time.monotonic() + _READY_WAIT_S
    while time.monotonic() < deadline:
        topics = await admin.describe_topics(list(wanted))
        ready = all(
            t["error_code"] == 0
            and len(t["partitions"]) >= wanted[t["topic"]]
            and all(p["error_code"] == 0 and p["leader"] >= 0 for p in t["partitions"])
            for t in topics
        )
        if ready:
            return
        await asyncio.sleep(0.05)  # a metadata round trip's worth; bounded by the deadline
