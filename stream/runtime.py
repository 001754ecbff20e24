"""What one events-app process holds besides Faust (settings, tracker, metrics, outputs,
webhooks, rules, watches, the health server) and the start-up work it does before Faust runs: the
topics it needs, the events index, the rules (file, then harclip.control) and the watches."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Mapping
from pathlib import Path
from typing import Any

from aiokafka.admin import NewTopic
from aiokafka.errors import KafkaError

from harclip.config import Settings
from harclip.control import RULES_KEY, WATCHES_KEY, ControlFollower
from harclip.errors import ConfigError, HarclipError, SinkUnavailable
from harclip.health import HealthServer
from harclip.io.es import make_es
from harclip.io.indices import ensure_templates
from harclip.io.kafka import make_admin
from harclip.io.topics import ensure_topics
from harclip.rules import Rules, RulesError, describe, load_rules_file
from stream import gctune
from stream.agents.watches import WatchBook, WatchMetrics
from stream.continuity import RangeReader
from stream.metrics import StreamMetrics
from stream.outputs import Outputs
from stream.tracker import Tracker, TrackerConfig
from stream.webhooks import StoreThumbnails, Webhooks

log = logging.getLogger("stream")


class Runtime:
    """What the app needs besides Faust: settings, the tracker, metrics, outputs, webhooks, the
    rules follower and the health server."""

    def __init__(self, settings: Settings, rules: Rules, partitions: int) -> None:
        s = settings.stream
        self.settings = settings
        self.partitions = partitions
        self.tracker = Tracker(
            TrackerConfig(smoothing_ms=s.smoothing_ms, min_hold_ms=s.min_hold_ms,
                          min_segment_ms=s.min_segment_ms,
                          idle_timeout_ms=int(s.idle_timeout_s * 1000)),
            rules,
        )  # fmt: skip
        self.metrics = StreamMetrics()
        self.metrics.gc_pauses.install()
        self.metrics.rules.set(len(rules.rules))
        self.outputs = Outputs(settings, self.metrics)
        thumbs = StoreThumbnails(settings.objects) if settings.objects.enabled else None
        self.watches = WatchBook(WatchMetrics(self.metrics.registry))
        self.webhooks = Webhooks(
            s, self.metrics, settings.api.public_url, thumbnails=thumbs,
            watch_urls=self.watches.webhooks,
        )  # fmt: skip
        self.reread = RangeReader(settings.kafka)
        self.follower = ControlFollower(
            settings.kafka, {RULES_KEY: self.on_rules_record, WATCHES_KEY: self.watches.on_record}
        )
        self._follow_stop = asyncio.Event()
        self.health = HealthServer(
            s.host, s.port, self.metrics.registry, self.not_ready,
            how_to_move="--port N (0: any free port) or HARCLIP_STREAM__PORT",
        )  # fmt: skip
        self.started = False
        self.crashed: HarclipError | None = None
        self.rebalancing: Callable[[], bool] = lambda: False  # the app's, once it is built
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def ticks_topic(self) -> str:
        """The idle timer's topic (stream/idle.py)."""
        return f"{self.settings.stream.app_id}-ticks"

    def crash_reason(self) -> str | None:
        """Why start-up failed, if it did (for a one-line message)."""
        return None if self.crashed is None else str(self.crashed)

    def set_rules(self, rules: Rules) -> None:
        self.tracker.set_rules(rules)
        self.metrics.rules.set(len(rules.rules))
        log.info("rules in force: %d%s", len(rules.rules),
                 "".join(f"\n  {line}" for line in describe(rules.rules)))  # fmt: skip

    def refuse_rules(self, message: str) -> None:
        self.metrics.rules_refused.inc()
        log.error("%s; the rules in force stay", message)

    def on_rules_record(self, raw: bytes) -> None:
        """A `rules` record of harclip.control: applied if valid, else refused (rules stay)."""
        try:
            rules = Rules.from_control(raw)
        except RulesError as e:
            self.refuse_rules(f"rules change on {self.settings.kafka.topics.control} refused: {e}")
            return
        self.set_rules(rules)

    async def prepare(self) -> None:
        """Topics (the project's six and the ticks topic) with the partition count the tables
        need, the events index, the rules on harclip.control, outputs, webhooks, /health (once:
        the app calls it on its first start)."""
        await self.health.start()
        await prepare_kafka(self.settings, self.partitions, self.ticks_topic)
        if self.settings.elasticsearch.enabled:
            es = make_es(self.settings.elasticsearch)
            try:
                await ensure_templates(es, self.settings.elasticsearch)
            finally:
                await es.close()
        await self.follower.catch_up()  # the newest valid rules win over the file
        await self.outputs.start()
        await self.webhooks.start()

    def start(self, background: Mapping[str, Coroutine[Any, Any, None]]) -> None:
        """The app runs: follow the rules on harclip.control, run `background` as tasks (until
        `close`), named by their keys."""
        self.started = True
        if self.settings.stream.gc_freeze:
            gctune.tune()  # after Faust and the app loaded: full collections skip all that
        log.info("events app ready: %d partitions, store %s, watches %d", self.partitions,
                 self.settings.stream.store, len(self.watches.watches))  # fmt: skip
        self._tasks.append(
            asyncio.create_task(self.follower.run(self._follow_stop), name="rules-follower")
        )
        self._tasks += [asyncio.create_task(c, name=name) for name, c in background.items()]

    async def stop_tasks(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    async def close(self) -> None:
        self._follow_stop.set()
        await self.stop_tasks()
        await self.webhooks.stop()
        await self.outputs.stop()
        await self.reread.close()
        await self.follower.stop()
        await self.health.stop()
        self.metrics.gc_pauses.remove()
        gctune.thaw()

    def not_ready(self) -> list[str]:
        missing = []
        if not self.started:
            missing.append("starting (table recovery)")
        elif self.rebalancing():
            missing.append("rebalancing")
        missing += [f"{sink}: {err}" for sink, err in self.outputs.failing.items()]
        self.metrics.ready.set(0 if missing else 1)
        return missing


async def prepare_kafka(settings: Settings, partitions: int, ticks_topic: str) -> None:
    """Create the project's topics, the ticks topic and the tables' changelogs if missing;
    `ConfigError` when the predictions or events topic has another partition count than the
    app's tables."""
    k = settings.kafka
    await ensure_topics(k, partitions=partitions)
    counts = await topic_partitions(settings, [k.topics.predictions, k.topics.events])
    for topic, n in counts.items():
        if n != partitions:
            raise ConfigError(
                f"topic {topic} has {n} partitions but the events app's tables have "
                f"{partitions}: set HARCLIP_KAFKA__PARTITIONS={n}"
            )
    extra = app_topics(settings, partitions, ticks_topic)
    await ensure_topics(k, partitions=partitions, extra=extra)


def app_topics(settings: Settings, partitions: int, ticks_topic: str) -> list[NewTopic]:
    """The ticks topic and the tables' changelogs, with their configs. Faust declares its
    changelog topics itself, but a slow declaration left a table with a "0 partitions"
    changelog here once (its agent crashed on every event): they are created first."""
    app_id = settings.stream.app_id
    expires_ms = str((settings.stream.stats_expires_s + 120) * 1000)
    compact = {"cleanup.policy": "compact"}
    windowed = {"cleanup.policy": "compact,delete", "retention.ms": expires_ms}
    wanted = {
        ticks_topic: {"retention.ms": "3600000"},
        f"{app_id}-states-changelog": compact,
        f"{app_id}-positions-changelog": compact,
        f"{app_id}-watches-changelog": compact,
        f"{app_id}-stats-labels-changelog": compact,
        f"{app_id}-stats-minute-changelog": windowed,
    }
    replication = settings.kafka.replication_factor
    return [NewTopic(name, partitions, replication, topic_configs=cfg)
            for name, cfg in wanted.items()]  # fmt: skip


async def topic_partitions(settings: Settings, topics: list[str]) -> dict[str, int]:
    """Partition count of each existing topic (missing topics are left out)."""
    admin = make_admin(settings.kafka)
    try:
        await admin.start()
        # only existing ones: a metadata request for a missing topic may auto-create it
        existing = set(await admin.list_topics())
        wanted = [t for t in topics if t in existing]
        described = await admin.describe_topics(wanted) if wanted else []
    except KafkaError as e:
        raise SinkUnavailable(f"Kafka at {settings.kafka.bootstrap}: {e!r}") from e
    finally:
        await admin.close()
    return {d["topic"]: len(d["partitions"]) for d in described if d.get("error_code", 0) == 0}


def load_rules(settings: Settings) -> Rules:
    """The rules file's rules (none without a file); `RulesError` naming the rule and field."""
    path = settings.stream.rules
    return Rules() if path is None else load_rules_file(Path(path))


def ecs_logging_config(level: str) -> dict[str, Any]:
    """dictConfig for ECS JSON logs on stdout (used when Faust's own worker sets up logging)."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"ecs": {"()": "harclip.log.EcsFormatter", "service": "harclip-stream"}},
        "handlers": {
            "out": {
                "class": "logging.StreamHandler",
                "formatter": "ecs",
                "stream": "ext://sys.stdout",
            }
        },
        "root": {"handlers": ["out"], "level": level.upper()},
    }
