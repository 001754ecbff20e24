"""The agents on harclip.events: `outputs` (batches to Elasticsearch and Redis), `stats` (the
windowed statistics) and `alerts` (alerts to the webhooks). Each admits records through
`Positions` (stream/continuity.py), so every event reaches each of them once per owner, even when
Faust's consumer skips or redelivers records in a rebalance.

`outputs` batches by hand rather than with `Stream.take`: records are acknowledged, and its
positions saved, only after both sinks took the batch, and its buffer is dropped (not
acknowledged) when its partitions are revoked, so the next owner writes those events again
(writes are idempotent)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import faust

from harclip.errors import MessageError
from harclip.messages import Event
from stream.continuity import Positions, Record
from stream.runtime import Runtime
from stream.stats import Stats

log = logging.getLogger("stream")


def parse_events(values: list[bytes]) -> list[Event]:
    out = []
    for v in values:
        try:
            out.append(Event.from_json(v))
        except MessageError as e:
            log.warning("ignoring a malformed event on harclip.events: %s", e)
    return out


@dataclass(frozen=True)
class Sinks:
    flusher: Callable[[], Coroutine[Any, Any, None]]  # run as a task once the app started
    revoked: Callable[[], None]  # drops the outputs buffer


def wire_sinks(
    app: faust.App, rt: Runtime, events_topic: Any, positions: Positions, stats: Stats
) -> Sinks:
    """Define the three agents; returns the outputs flusher and what to call when partitions
    are revoked."""
    s = rt.settings.stream
    pending: list[Event] = []
    acks: list[Any] = []  # records behind `pending`, acknowledged once it is written
    oldest = [0.0]  # monotonic time the oldest record in `pending` was taken
    lock = asyncio.Lock()
    holder: list[Any] = []  # the outputs agent's (manual-ack) stream, once it runs

    async def flush_outputs() -> None:
        events, pending[:] = list(pending), []
        taken, acks[:] = list(acks), []
        await rt.outputs.write(events)
        positions.persist("outputs", holder[0])
        for ev in taken:
            await holder[0].ack(ev)

    def admitted(missed: list[Record], ev: Any) -> list[Event]:
        return parse_events([r.value for r in missed] + [ev.value or b""])

    @app.agent(events_topic, name="stream.outputs")
    async def outputs(stream: faust.StreamT[bytes]) -> None:
        manual = stream.noack()  # type: ignore[attr-defined]
        holder[:] = [manual]
        async for ev in manual.events():
            async with lock:
                missed = await positions.admit("outputs", manual, ev)
                if missed is None:  # written before
                    await manual.ack(ev)
                    continue
                if not acks:
                    oldest[0] = time.monotonic()
                pending.extend(admitted(missed, ev))
                acks.append(ev)
                positions.applied("outputs", ev)
                if len(acks) >= s.sink_batch or s.sink_wait_ms == 0:
                    await flush_outputs()

    async def flush_soon() -> None:
        """Write the buffer once its oldest event has waited `sink_wait_ms`."""
        wait_s = s.sink_wait_ms / 1000
        while True:
            await asyncio.sleep(max(0.005, wait_s / 2))
            if acks and not lock.locked() and time.monotonic() - oldest[0] >= wait_s:
                async with lock:
                    try:
                        if acks:
                            await flush_outputs()
                    except Exception as e:  # a stalled flusher would hold every ack
                        if app.should_stop:  # stopping: unacked events are read again
                            return
                        log.exception("outputs flush failed; the app stops (events are read again)")
                        await app.crash(e)
                        raise

    async def each_event(name: str, stream: Any, apply: Callable[[Event], object]) -> None:
        """`apply` each event once and in order, then record the partition's position."""
        async for ev in stream.events():
            missed = await positions.admit(name, stream, ev)
            if missed is None:
                continue
            for e in admitted(missed, ev):
                apply(e)
            positions.applied(name, ev)
            positions.persist(name, stream)

    def alert(e: Event) -> None:
        if e.type == "alert":
            rt.webhooks.offer(e)

    @app.agent(events_topic, name="stream.stats")
    async def stats_agent(stream: faust.StreamT[bytes]) -> None:
        await each_event("stats", stream, stats.apply)

    @app.agent(events_topic, name="stream.alerts")
    async def alerts(stream: faust.StreamT[bytes]) -> None:
        await each_event("alerts", stream, alert)

    def revoked() -> None:
        pending.clear()
        acks.clear()  # not acknowledged: the next owner reads them again

    del outputs, stats_agent, alerts
    return Sinks(flush_soon, revoked)
