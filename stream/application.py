"""The Faust app of `stream/`: its topics, tables, agents and timers, as a registration table.

- agents (stream/agents/) in `Checkpoint`s (stream/checkpoint.py, the delivery guarantee): `track`
  (predictions + ticks -> events), `watches` (stream/watching.py), `outputs` (ES, Redis), `stats`,
  `alerts`; evidence (stream/evidence/) runs off them; timers: statistics, idle ticks; rebalances:
  buffers dropped, gc thawed then frozen (stream/gctune.py). `create_app(settings)` builds one.
"""

from __future__ import annotations

from typing import Any, cast

import faust

from harclip.config import Settings
from harclip.errors import HarclipError
from harclip.io.kafka import faust_broker
from harclip.rules import Rules
from stream import gctune
from stream.agents import alerts, outputs, stats, track
from stream.checkpoint import Checkpoint, Pace, transport_class
from stream.continuity import Positions
from stream.evidence.service import evidence_tasks
from stream.idle import IdleTicker, send_tick
from stream.runtime import Runtime, ecs_logging_config, load_rules
from stream.stats import Stats
from stream.watching import watches_checkpoint


class StreamApp(faust.App):
    """A Faust app that prepares topics, the events index and its side services before Faust
    starts its consumer, and closes them when it stops."""

    runtime: Runtime

    async def on_first_start(self) -> None:
        await super().on_first_start()
        try:
            await self.runtime.prepare()
        except HarclipError as e:
            self.runtime.crashed = e
            raise

    def _new_transport(self) -> Any:
        tuned = transport_class(self.runtime.settings.stream.fetch_wait_ms)
        return tuned(self.conf.broker_consumer, self)

    async def on_shutdown(self) -> None:
        # after the agents stopped: until then they may write (Faust waits for their acks)
        await super().on_shutdown()
        await self.runtime.close()


def create_app(settings: Settings, *, rules: Rules | None = None,
               partitions: int | None = None) -> StreamApp:  # fmt: skip
    """The events app for `settings`: tables with `partitions` partitions (default
    `kafka.partitions`; it must match harclip.predictions and harclip.events)."""
    s, k, n = settings.stream, settings.kafka, partitions or settings.kafka.partitions
    runtime = Runtime(settings, rules if rules is not None else load_rules(settings), n)
    app = StreamApp(
        s.app_id,
        **faust_broker(k, "stream"),
        store=f"{s.store}://",
        datadir=str(s.datadir),
        topic_partitions=n,
        topic_replication_factor=k.replication_factor,
        table_standby_replicas=s.standby_replicas,
        broker_commit_interval=s.commit_interval_s,
        broker_session_timeout=s.session_timeout_s,
        broker_heartbeat_interval=min(3.0, s.session_timeout_s / 3),
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        producer_linger_ms=k.producer_linger_ms,
        producer_max_request_size=k.max_message_bytes,
        web_enabled=False,
        autodiscover=False,
        env={},
        logging_config=ecs_logging_config(settings.log_level)
        if settings.log_format == "ecs" else None,
    )  # fmt: skip
    app.runtime, runtime.rebalancing = runtime, lambda: app.rebalancing
    _wire(app, runtime)
    return app


def _wire(app: StreamApp, rt: Runtime) -> None:
    s, t, m = rt.settings.stream, rt.settings.kafka.topics, rt.metrics
    raw: dict[str, Any] = {"key_type": bytes, "value_type": bytes, "key_serializer": "raw",
                           "value_serializer": "raw", "allow_empty": True}  # fmt: skip
    predictions = app.topic(t.predictions, rt.ticks_topic, **raw)
    ticks = app.topic(rt.ticks_topic, **raw)
    events = app.topic(t.events, **raw)
    states = app.Table("states", key_type=bytes, value_type=bytes, help="per-stream state")
    positions = Positions(
        app.Table("positions", key_type=bytes, value_type=bytes, help="last record applied"),
        rt.reread, lambda agent, n: m.reread.labels(agent).inc(n),
    )  # fmt: skip
    windows = Stats(app, s.stats_expires_s)

    async def send(e: Any) -> Any:
        return await events.send(key=e.stream_id.encode(), value=e.to_json())

    tracking = track.TrackAgent(rt.tracker, states, send, m, rt.ticks_topic)
    statistics = stats.StatsAgent(windows, rt.outputs.write_stats)
    idle = IdleTicker(app, tracking, send_tick(ticks), m, t.predictions, rt.partitions)
    track_age_s = min(0.25, s.commit_interval_s / 4)  # acks (so commits) wait; events never do
    sink_wait_s = s.sink_wait_ms / 1000
    checkpoints = {  # agent name -> (its topic, its checkpoint)
        "track": (predictions, Checkpoint(
            tracking, positions, app, Pace(s.track_batch, track_age_s, s.track_wait_ms / 1000),
            unchecked={rt.ticks_topic}, on_redelivered=m.ignored.labels("redelivered").inc,
        )),
        "outputs": (events, Checkpoint(
            outputs.OutputsAgent(rt.outputs), positions, app,
            Pace(1 if s.sink_wait_ms == 0 else s.sink_batch, sink_wait_s,
                 max(0.005, sink_wait_s / 2)),
        )),
        "stats": (events, Checkpoint(statistics, positions, app, Pace())),
        "alerts": (events, Checkpoint(alerts.AlertsAgent(rt.webhooks), positions, app, Pace())),
        "watches": (predictions, watches_checkpoint(app, rt, positions, send)),
    }  # fmt: skip
    for name, (topic, checkpoint) in checkpoints.items():
        app.agent(topic, name=f"stream.{name}")(checkpoint.run)

    async def started() -> None:
        timed = {f"{n}-flush": cp.flush_when_old() for n, (_, cp) in checkpoints.items()
                 if cp.pace.max_age_s is not None}  # fmt: skip
        rt.start(timed | evidence_tasks(rt.settings, m))

    async def revoked(sender: Any, *args: Any, **kwargs: Any) -> None:
        gctune.thaw()  # Faust's RocksDB store frees a revoked partition's database by gc.collect()
        for _, checkpoint in checkpoints.values():
            checkpoint.drop()  # not acknowledged: the next owner reads them again
        tracking.reassigned()
        idle.forget()
        positions.forget()
        windows.forget()

    async def assigned(sender: Any, *args: Any, **kwargs: Any) -> None:
        gctune.refreeze(rt.settings.stream.gc_freeze)
        tracking.reassigned()
        positions.forget()
        windows.forget()

    app.timer(stats.FLUSH_S)(statistics.flush)
    app.timer(min(1.0, s.idle_timeout_s / 4))(idle.check)
    app.task(started)
    app.on_partitions_revoked.connect(cast(Any, revoked))  # faust's stubs want a sync signature
    app.on_partitions_assigned.connect(cast(Any, assigned))
