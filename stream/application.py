"""The Faust app of `stream/`: its topics, tables and agents, one agent per concern.

- `track` (harclip.predictions + the app's ticks topic): each stream's state (`states` table) ->
  `Tracker` -> events to harclip.events. The events of a step are acknowledged by Kafka before
  the state that follows from them goes to the changelog, so a recovered state never skips an
  event that was lost.
- `outputs`, `stats`, `alerts` (harclip.events, stream/sinks.py): batches to Elasticsearch and
  Redis, windowed statistics (flushed to Redis by a timer), alerts to the webhooks.
- every agent admits records through `Positions` (stream/continuity.py): each partition's
  records are applied once and in order, whatever Faust's consumer does in a rebalance.
- the idle timer: a stream of this worker's partitions that has been quiet for a threshold gets a
  tick on the ticks topic (same key, so the same partition and owner as its predictions), which
  `track` turns into `stream.down` and stream-down alerts.

`create_app(settings)` builds an app; `stream/app.py` holds the one `faust -A stream.app worker`
runs, `python -m stream` builds its own.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, cast

import faust
import orjson
from aiokafka.errors import KafkaError
from aiokafka.partitioner import murmur2
from faust.types import TP

from harclip.config import Settings
from harclip.errors import HarclipError, MessageError
from harclip.messages import Event, Prediction, now_ms
from harclip.rules import Rules
from stream.continuity import Positions
from stream.runtime import Runtime, ecs_logging_config, load_rules
from stream.sinks import wire_sinks
from stream.stats import Stats
from stream.tracker import StreamState
from stream.transport import transport_class

log = logging.getLogger("stream")

_STATS_FLUSH_S = 1.0  # statistics to Redis at most this often, seconds


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
        # after the agents stopped: until then they may write, and Faust waits for the state
        # flusher to ack the records they took ("Wait for streams")
        await super().on_shutdown()
        await self.runtime.close()


def create_app(settings: Settings, *, rules: Rules | None = None,
               partitions: int | None = None) -> StreamApp:  # fmt: skip
    """The events app for `settings`: tables with `partitions` partitions (default
    `kafka.partitions`; it must match harclip.predictions and harclip.events)."""
    s, k = settings.stream, settings.kafka
    n = partitions or k.partitions
    runtime = Runtime(settings, rules if rules is not None else load_rules(settings), n)
    app = StreamApp(
        s.app_id,
        broker=[f"kafka://{h.strip()}" for h in k.bootstrap.split(",")],
        broker_client_id=f"{k.client_id}-stream",
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
    app.runtime = runtime
    runtime.app = app
    _wire(app, runtime)
    return app


def _wire(app: StreamApp, rt: Runtime) -> None:
    t = rt.settings.kafka.topics
    m = rt.metrics
    tracker = rt.tracker
    raw: dict[str, Any] = {"key_type": bytes, "value_type": bytes, "key_serializer": "raw",
                           "value_serializer": "raw", "allow_empty": True}  # fmt: skip
    inputs = app.topic(t.predictions, rt.ticks_topic, **raw)
    ticks = app.topic(rt.ticks_topic, **raw)
    events_topic = app.topic(t.events, **raw)
    states = app.Table("states", key_type=bytes, value_type=bytes, help="per-stream state")
    stats = Stats(app, rt.settings.stream.stats_expires_s)
    positions = Positions(
        app.Table("positions", key_type=bytes, value_type=bytes, help="last record applied"),
        rt.reread, lambda agent, n: m.reread.labels(agent).inc(n),
    )  # fmt: skip
    sinks = wire_sinks(app, rt, events_topic, positions, stats)
    cache: dict[str, StreamState] = {}  # states of this worker's partitions, as objects
    # Silence is counted from the later of a stream's last prediction and this worker getting
    # its partitions, so a restarted or rebalanced worker first catches up on its backlog.
    assigned_at = [now_ms()]
    ticked: dict[str, tuple[int, set[int]]] = {}  # stream -> (last_wall, thresholds ticked)
    processed: dict[int, int] = {}  # predictions partition -> offset of the last record handled

    def load(stream_id: str) -> StreamState | None:
        st = cache.get(stream_id)
        if st is None:
            stored = states.get(stream_id.encode())
            if stored is not None:
                st = cache[stream_id] = StreamState.from_bytes(stored)
        return st

    inflight: list[Any] = []  # acks of the events sent since the last flush

    async def emit(events: list[Event]) -> None:
        """Send `events` (the agent goes on; `flush` waits for their acks before it writes the
        states that follow from them)."""
        for e in events:
            inflight.append(await events_topic.send(key=e.stream_id.encode(), value=e.to_json()))
            m.events.labels(e.type).inc()

    def on_prediction(
        value: bytes | None, key: bytes | None, arrived_s: float, out: list[Event]
    ) -> StreamState | None:
        """Apply one prediction; the changed state (None if ignored), its events into `out`."""
        try:
            p = Prediction.from_json(value or b"")
            if key is not None and key != p.stream_id.encode():
                raise MessageError(f"record key {key!r} is not its stream_id {p.stream_id!r}")
        except MessageError as e:
            m.ignored.labels("malformed").inc()
            log.warning("ignoring a malformed prediction: %s", e)
            return None
        wall = now_ms()
        result = tracker.on_prediction(load(p.stream_id), p, wall)
        if result is None:
            m.ignored.labels("stale").inc()
            return None
        st, events = result
        cache[p.stream_id] = st
        out += events
        m.predictions.inc()
        m.lag.observe(max(0.0, wall / 1000 - arrived_s))
        return st

    def on_tick(key: bytes | None, out: list[Event]) -> StreamState | None:
        st = load(key.decode()) if key else None
        if st is None:
            return None
        out += tracker.on_idle(st, now_ms(), quiet_since=max(st.last_wall, assigned_at[0]))
        return st

    # State writes are coalesced: one changelog record per stream per flush (every
    # `track_batch` records, or when the oldest unacked record is 250 ms old), not per
    # prediction. A flush first waits until Kafka acknowledged every event sent since the last
    # one, so a stored state never follows from an event that was lost; records are acked (so
    # their offsets can be committed) only once the state they led to is written.
    dirty: dict[str, tuple[StreamState, Any]] = {}  # stream -> (state, its newest record)
    unacked: list[Any] = []
    first_unacked = [0.0]  # monotonic time the agent took the oldest unacked record
    flushing = asyncio.Lock()
    track_stream: list[Any] = []  # the agent's (manual-ack) stream, once it runs

    def write_state(st: StreamState, ev: Any) -> None:
        # the table (and RocksDB) find the key's partition through the current event
        track_stream[0]._set_current_event(ev)
        states[st.stream_id.encode()] = st.to_bytes()

    async def flush() -> None:
        if inflight:
            sent, inflight[:] = list(inflight), []
            await asyncio.gather(*sent)
        for st, ev in dirty.values():
            write_state(st, ev)
        dirty.clear()
        positions.persist("track", track_stream[0])  # after the states they stand for
        acks, unacked[:] = list(unacked), []
        for ev in acks:
            await track_stream[0].ack(ev)

    async def flush_soon() -> None:
        """Flush once the oldest unacked record has waited a quarter of the commit interval
        (at most 250 ms): acks, and so commits, wait that long; events never do."""
        wait_s = rt.settings.stream.track_wait_ms / 1000
        max_age_s = min(0.25, rt.settings.stream.commit_interval_s / 4)
        while True:
            await asyncio.sleep(wait_s)
            if not unacked or flushing.locked():
                continue
            if time.monotonic() - first_unacked[0] < max_age_s:
                continue
            async with flushing:
                try:
                    await flush()
                except Exception as e:  # a stalled flusher would hold every ack: stop loudly
                    cache.clear()
                    if app.should_stop:  # stopping: the producer may be gone already
                        return
                    log.exception("state flush failed; the app stops (records are read again)")
                    await app.crash(e)
                    raise

    async def step(st: StreamState | None, out: list[Event], ev: Any) -> None:
        """Send the events a record led to; its state is written at the next flush."""
        if st is None:
            return
        if out:
            await emit(out)
        dirty[st.stream_id] = (st, ev)

    @app.agent(inputs, name="stream.track")
    async def track(stream: faust.StreamT[bytes]) -> None:
        manual = stream.noack()  # type: ignore[attr-defined]
        track_stream[:] = [manual]
        batch = rt.settings.stream.track_batch
        async for ev in manual.events():
            async with flushing:
                try:
                    msg = ev.message
                    track_stream[0]._set_current_event(ev)  # reads find the right partition
                    if msg.topic == rt.ticks_topic:
                        out: list[Event] = []
                        await step(on_tick(ev.key, out), out, ev)
                    else:
                        missed = await positions.admit("track", manual, ev)
                        if missed is None:
                            m.ignored.labels("redelivered").inc()
                        else:  # what the consumer skipped first (aiokafka times are ms)
                            records = [(r.value, r.key, r.timestamp / 1000) for r in missed]
                            records.append((ev.value, ev.key, msg.timestamp))
                            for value, key, arrived_s in records:
                                out = []
                                await step(on_prediction(value, key, arrived_s, out), out, ev)
                            processed[msg.partition] = msg.offset
                            positions.applied("track", ev)
                    if not unacked:
                        first_unacked[0] = time.monotonic()
                    unacked.append(ev)
                    if len(unacked) >= batch:
                        await flush()
                except BaseException:
                    cache.clear()  # the table keeps the last written states
                    dirty.clear()
                    unacked.clear()
                    inflight.clear()
                    raise

    async def flush_stats() -> None:
        if not stats.dirty:
            return
        dirty, stats.dirty = stats.dirty, set()
        wall = now_ms()
        docs = []
        for sid in dirty:  # a stream's first snapshot reads its hour: let the agents run between
            if (d := stats.snapshot(sid, wall)) is not None:
                docs.append(d)
            await asyncio.sleep(0)
        if not await rt.outputs.write_stats(docs):
            stats.dirty |= dirty  # next time

    async def idle_check() -> None:
        """Tick the streams of this worker's partitions that went quiet past a threshold.
        Only partitions whose records are all processed count: a stream is quiet when Kafka
        holds nothing more for it, not while this worker is behind or rebalancing."""
        if app.rebalancing:
            return
        actives = app.assignor.assigned_actives()
        mine = [tp for tp in actives if tp.topic == t.predictions]
        if not mine:
            return
        try:
            ends = await app.consumer.highwaters(*mine)
        except KafkaError as e:  # a rebalance began meanwhile: next tick
            log.debug("idle check skipped: %r", e)
            return
        caught_up: set[int] = set()
        for tp in mine:
            done = processed.get(tp.partition)
            if done is None:  # nothing processed since the assignment: where it starts
                try:
                    start = await app.consumer.position(tp)
                except KafkaError:  # revoked since `actives` was read: not ours to tick
                    continue
                done = -1 if start is None else start - 1
            if done + 1 >= ends.get(tp, 0):
                caught_up.add(tp.partition)
        now = now_ms()
        owned = 0
        for key, stored in list(states.items()):
            partition = (murmur2(key) & 0x7FFFFFFF) % rt.partitions
            if TP(t.predictions, partition) not in actives:
                continue
            owned += 1
            if partition not in caught_up:
                continue
            sid = key.decode()
            st = cache.get(sid) or StreamState.from_bytes(stored)
            idle = now - max(st.last_wall, assigned_at[0])
            last_wall, done_ms = ticked.get(sid, (st.last_wall, set()))
            if last_wall != st.last_wall:
                done_ms = set()
            due = [th for th in tracker.idle_thresholds_ms(sid) if idle >= th and th not in done_ms]
            if due:
                done_ms.update(due)
                await ticks.send(key=key, value=orjson.dumps({"tick": "idle", "at": now}))
            ticked[sid] = (st.last_wall, done_ms)
        m.streams.set(owned)

    async def started() -> None:
        rt.started = True
        log.info("events app ready: %d partitions, store %s, rules %d",
                 rt.partitions, rt.settings.stream.store, len(rt.rules.rules))  # fmt: skip
        follow = asyncio.create_task(rt.follower.run(rt._follow_stop), name="rules-follower")
        rt._tasks += [
            follow,
            asyncio.create_task(flush_soon(), name="state-flush"),
            asyncio.create_task(sinks.flusher(), name="outputs-flush"),
        ]

    async def revoked(sender: Any, *args: Any, **kwargs: Any) -> None:
        cache.clear()
        ticked.clear()
        processed.clear()
        dirty.clear()  # revoked records are not acked: the next owner reads them again
        unacked.clear()
        inflight.clear()
        sinks.revoked()
        positions.forget()
        stats.forget()

    async def assigned(sender: Any, *args: Any, **kwargs: Any) -> None:
        cache.clear()
        positions.forget()
        stats.forget()
        processed.clear()
        assigned_at[0] = now_ms()

    app.timer(_STATS_FLUSH_S)(flush_stats)
    app.timer(min(1.0, rt.settings.stream.idle_timeout_s / 4))(idle_check)
    app.task(started)
    app.on_partitions_revoked.connect(cast(Any, revoked))  # faust's stubs want a sync signature
    app.on_partitions_assigned.connect(cast(Any, assigned))
    del track
