"""The events app's delivery guarantee, in one owner per agent (the shape of quix-streams'
`Checkpoint.commit`).

A `Checkpoint` wraps one agent (stream/agents/): it reads the agent's Faust stream with manual
acknowledgements, hands it each partition's records once and in order (`records`: a record the
consumer skipped is read from Kafka first, a redelivered one is skipped; stream/continuity.py),
and commits in one fixed order (`commit`):

1. wait until Kafka acknowledged the events the agent sent since the last commit;
2. write what the agent holds (its changed states, or its batch to the sinks);
3. persist the agent's positions (they stand for what step 2 wrote);
4. acknowledge the records, so Faust may commit their offsets.

A commit runs when `batch` records wait, or when the oldest has waited `max_age_s` (a timer,
`flush_when_old`); a commit the timer runs that fails stops the worker (exit 1, logged) unless
the app is stopping. When partitions are revoked the agent's buffers are dropped, not
acknowledged: the next owner reads those records again.

This is the only module that touches Faust's internals (`_set_current_event`, manual acks, the
consumer's fetch wait): if faust-streaming fixes its rebalance bug, or the app moves to another
consumer loop, only this file changes.

`transport_class`: Faust's aiokafka transport with one change, the consumer's
`fetch_max_wait_ms`. faust-streaming creates its consumer with `fetch_max_wait_ms=1500` (not a
setting). aiokafka keeps one fetch request in flight per broker, and a request for partitions
that have no new data waits that long at the broker; partitions whose records were just handed
out must wait for it to come back. Measured (bench/stream.py at 300 predictions/s): records
waited 0.5-1 s (p50) and up to 2.5 s before the app applied them; with 50 ms, ~0.1 s.
`stream.fetch_wait_ms` sets it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from faust.transport.drivers import aiokafka as driver

from stream.continuity import KafkaRecord, Positions, Record

log = logging.getLogger("stream")


class Agent(Protocol):
    """What a checkpoint needs of an agent (stream/agents/)."""

    name: str

    async def apply(self, records: Sequence[Record]) -> None:
        """Apply records (each partition's in order, each once)."""

    def sent(self) -> list[Awaitable[Any]]:
        """The acks of the events sent since the last call (then forgotten)."""

    async def write(self, focus: Callable[[Record], None]) -> None:
        """Write what the applied records led to (`focus(record)` before a table write)."""

    def drop(self) -> None:
        """Forget what is not written yet (partitions revoked, or a failure)."""


class App(Protocol):
    """The two things a checkpoint asks of the Faust app."""

    @property
    def should_stop(self) -> bool: ...

    async def crash(self, reason: BaseException) -> None: ...


@dataclass(frozen=True, slots=True)
class Pace:
    """When a checkpoint commits: every `batch` records, or once the oldest unacknowledged
    record has waited `max_age_s` (checked every `poll_s`; `max_age_s` None: no timer)."""

    batch: int = 1
    max_age_s: float | None = None
    poll_s: float = 0.05


def record_of(ev: Any) -> Record:
    """The `Record` of a Faust event (its message's timestamp is in seconds)."""
    m = ev.message
    return Record(m.topic, m.partition, m.offset, ev.key, ev.value, m.timestamp)


def read_back(topic: str, partition: int, r: KafkaRecord) -> Record:
    """The `Record` of an aiokafka record read back (its timestamp is in ms)."""
    return Record(topic, partition, r.offset, r.key, r.value, r.timestamp / 1000)


class Checkpoint:
    """One agent's reading, committing and revoking (see the module docstring)."""

    def __init__(
        self,
        agent: Agent,
        positions: Positions,
        app: App,
        pace: Pace,
        *,
        unchecked: Collection[str] = (),
        on_redelivered: Callable[[], None] | None = None,
    ) -> None:
        self.agent = agent
        self.pace = pace
        self._positions = positions
        self._app = app
        self._unchecked = set(unchecked)  # topics applied as they come (the ticks)
        self._on_redelivered = on_redelivered
        self._stream: Any = None  # the agent's stream with manual acks, once it runs
        self._unacked: list[Any] = []  # events applied (or skipped) since the last commit
        self._first_unacked = 0.0  # monotonic time the oldest of them was taken
        self._events: dict[int, Any] = {}  # partition -> the newest event taken of it
        self._lock = asyncio.Lock()  # one of: a record being applied, a commit

    @property
    def unacked(self) -> int:
        return len(self._unacked)

    async def run(self, stream: Any) -> None:
        """The agent's body: apply every record `records` gives, commit as `pace` says."""
        manual = stream.noack()
        self._stream = manual
        try:
            async with contextlib.aclosing(self.records(manual)) as batches:
                async for batch in batches:
                    await self.agent.apply(batch)
        except BaseException:
            self.drop()  # the table keeps the last written states
            raise

    async def records(self, stream: Any) -> AsyncGenerator[list[Record], None]:
        """Each partition's records once and in order, a list per event Faust delivers (the
        records the consumer skipped before it first). Each list is applied while this
        checkpoint's lock is held; a commit follows when `pace.batch` records wait."""
        async for ev in stream.events():
            async with self._lock:
                self._focus(ev)  # the agent's table reads find the record's partition
                admitted = await self._admit(ev)
                if admitted is not None:
                    yield admitted
                    if ev.message.topic not in self._unchecked:
                        self._positions.applied(self.agent.name, ev)
                elif self._on_redelivered is not None:
                    self._on_redelivered()
                if not self._unacked:
                    self._first_unacked = time.monotonic()
                self._unacked.append(ev)
                if len(self._unacked) >= self.pace.batch:
                    await self.commit()
                # hold no reference to the event while waiting for the next (see `commit`)
                self._stream._set_current_event(None)
            del ev

    async def _admit(self, ev: Any) -> list[Record] | None:
        msg = ev.message
        if msg.topic in self._unchecked:
            return [record_of(ev)]
        missed = await self._positions.admit(self.agent.name, ev, self._focus)
        if missed is None:
            return None
        return [read_back(msg.topic, msg.partition, r) for r in missed] + [record_of(ev)]

    async def commit(self) -> None:
        """Sends acknowledged -> state or batch written -> positions persisted -> records
        acknowledged. Called with the lock held (by `records` or `flush_when_old`).

        Afterwards nothing here refers to the acknowledged events, and the stream's current
        event is what it was before: Faust (`stream_wait_empty`, on a rebalance and on
        shutdown) waits until every message an agent took is acknowledged by all the agents
        of its topic or garbage; a message that only some agents took (Faust clears the other
        agents' queues when it stops the flow) is never acknowledged, so a reference kept to
        it here (or as the current event, which Faust's iterator also acks a skipped record
        as) held every rebalance and every shutdown forever."""
        current = self._stream.current_event
        try:
            await self._commit()
        finally:
            self._events.clear()
            self._stream._set_current_event(current)

    async def _commit(self) -> None:
        sent = self.agent.sent()
        if sent:
            await asyncio.gather(*sent)
        await self.agent.write(self._focus_record)
        self._positions.persist(self.agent.name, self._focus)
        acks, self._unacked = self._unacked, []
        for ev in acks:
            await self._stream.ack(ev)

    async def flush_when_old(self) -> None:
        """A task: commit once the oldest unacknowledged record has waited `pace.max_age_s`.
        A failing commit stops the worker (a stalled flusher would hold every ack), unless the
        app is stopping already (its producer may be gone; the records are read again)."""
        max_age_s = self.pace.max_age_s
        if max_age_s is None:
            return
        while True:
            await asyncio.sleep(self.pace.poll_s)
            if not self._unacked or self._lock.locked():
                continue
            if time.monotonic() - self._first_unacked < max_age_s:
                continue
            async with self._lock:
                try:
                    if self._unacked:
                        await self.commit()
                except Exception as e:
                    self.drop()
                    if self._app.should_stop:
                        return
                    log.exception("%s flush failed; the app stops (records are read again)",
                                  self.agent.name)  # fmt: skip
                    await self._app.crash(e)
                    raise

    def drop(self) -> None:
        """Partitions revoked (or a failure): what waits is dropped, not acknowledged, so the
        next owner reads those records again."""
        self.agent.drop()
        self._unacked.clear()
        self._events.clear()

    def _focus(self, ev: Any) -> None:
        """Make `ev` Faust's current event: table reads and writes take its partition."""
        self._events[ev.message.partition] = ev
        self._stream._set_current_event(ev)

    def _focus_record(self, record: Record) -> None:
        self._stream._set_current_event(self._events[record.partition])


def transport_class(fetch_wait_ms: int) -> type[driver.Transport]:
    """An aiokafka `Transport` whose consumer waits at most `fetch_wait_ms` per fetch."""

    class ConsumerThread(driver.AIOKafkaConsumerThread):
        def _create_worker_consumer(self, transport: Any) -> Any:
            consumer = super()._create_worker_consumer(transport)
            consumer._fetch_max_wait_ms = fetch_wait_ms  # read when the consumer starts
            return consumer

    class TunedConsumer(driver.Consumer):
        def _new_consumer_thread(self) -> Any:
            return ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    class Transport(driver.Transport):
        Consumer: ClassVar[Any] = TunedConsumer

    return Transport
