"""The Checkpoint without Faust or Kafka: fakes stand for Faust's stream (events, manual acks,
the current event) and the app; a dict is the positions table; a fake reads ranges back."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from stream.checkpoint import Checkpoint, Pace
from stream.continuity import Positions, Record


@dataclass
class Msg:
    topic: str
    partition: int
    offset: int
    timestamp: float = 1.5  # seconds, as Faust's message has it


@dataclass
class Ev:
    message: Msg
    key: bytes | None = None
    value: bytes | None = None


def ev(offset: int, partition: int = 0, topic: str = "t") -> Ev:
    return Ev(Msg(topic, partition, offset), b"k", f"v{offset}".encode())


class Stream:
    """Faust's stream as the checkpoint uses it: `noack`, `events`, `ack`, the current event.
    It hands out `evs`, then sets `drained` and waits (as a consumer with nothing new)."""

    def __init__(self, evs: Sequence[Ev], journal: list[str]) -> None:
        self.evs = list(evs)
        self.journal = journal
        self.acked: list[int] = []
        self.current_event: Ev | None = None
        self.drained = asyncio.Event()
        self.more = asyncio.Event()
        self.some_acked = asyncio.Event()

    def noack(self) -> Stream:
        return self

    async def events(self) -> AsyncIterator[Ev]:
        while self.evs:  # keeps no reference to what it handed out
            yield self.evs.pop(0)
        self.drained.set()
        await self.more.wait()

    async def ack(self, e: Ev) -> None:
        self.journal.append(f"ack {e.message.offset}")
        self.acked.append(e.message.offset)
        self.some_acked.set()

    def _set_current_event(self, e: Ev | None) -> None:
        self.current_event = e


class Table(dict[bytes, bytes]):
    def __init__(self, journal: list[str]) -> None:
        super().__init__()
        self.journal = journal

    def __setitem__(self, key: bytes, value: bytes) -> None:
        self.journal.append(f"position {value.decode()}")
        super().__setitem__(key, value)


class Ack:
    """An event send's acknowledgement: awaiting it journals it."""

    def __init__(self, journal: list[str], name: str) -> None:
        self.journal, self.name = journal, name

    def __await__(self) -> Generator[Any, None, None]:
        self.journal.append(f"sent {self.name}")
        return
        yield


@dataclass
class Agent:
    journal: list[str]
    name: str = "a"
    applied: list[list[Record]] = field(default_factory=list)
    held: list[Record] = field(default_factory=list)
    inflight: list[Awaitable[Any]] = field(default_factory=list)
    fail_write: bool = False
    dropped: int = 0

    async def apply(self, records: Sequence[Record]) -> None:
        self.applied.append(list(records))
        for r in records:
            self.inflight.append(Ack(self.journal, str(r.offset)))
            self.held.append(r)

    def sent(self) -> list[Awaitable[Any]]:
        sent, self.inflight = self.inflight, []
        return sent

    async def write(self, focus: Callable[[Record], None]) -> None:
        if self.fail_write:
            raise RuntimeError("disk full")
        for r in self.held:
            focus(r)
            self.journal.append(f"write {r.offset}")
        self.held = []

    def drop(self) -> None:
        self.held, self.inflight = [], []
        self.dropped += 1


class Reader:
    def __init__(self, offsets: list[int]) -> None:
        self.offsets = offsets

    async def read(self, topic: str, partition: int, start: int, end: int) -> list[Any]:
        @dataclass
        class Rec:  # aiokafka's ConsumerRecord: timestamp in ms
            offset: int
            key: bytes = b"k"
            value: bytes = b"old"
            timestamp: int = 2500

        return [Rec(o) for o in self.offsets if start <= o < end]


@dataclass
class App:
    should_stop: bool = False
    crashed: list[BaseException] = field(default_factory=list)

    async def crash(self, reason: BaseException) -> None:
        self.crashed.append(reason)


def make(
    evs: Sequence[Ev], pace: Pace, *, saved: dict[bytes, bytes] | None = None,
    reader: Reader | None = None, app: App | None = None, **kw: Any,
) -> tuple[Checkpoint, Agent, Stream, list[str]]:  # fmt: skip
    journal: list[str] = []
    table = Table(journal)
    dict.update(table, saved or {})
    agent = Agent(journal)
    positions = Positions(table, reader or Reader([]))  # type: ignore[arg-type]
    cp = Checkpoint(agent, positions, app or App(), pace, **kw)
    return cp, agent, Stream(evs, journal), journal


async def run_until_drained(cp: Checkpoint, stream: Stream) -> asyncio.Task[None]:
    task = asyncio.create_task(cp.run(stream))
    await stream.drained.wait()
    return task


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_commit_waits_for_sends_then_writes_then_persists_then_acks() -> None:
    cp, _agent, stream, journal = make([ev(0), ev(1)], Pace(batch=2))
    task = await run_until_drained(cp, stream)
    assert journal == ["sent 0", "sent 1", "write 0", "write 1", "position 1", "ack 0", "ack 1"]
    assert stream.current_event is None  # see test_no_reference_is_kept_to_acknowledged_events
    assert cp.unacked == 0
    await stop(task)


async def test_records_wait_for_the_batch_before_anything_is_written_or_acked() -> None:
    cp, agent, stream, journal = make([ev(0), ev(1)], Pace(batch=3))
    task = await run_until_drained(cp, stream)
    assert [[r.offset for r in b] for b in agent.applied] == [[0], [1]]
    assert journal == [] and cp.unacked == 2
    await stop(task)
    assert agent.dropped == 1  # the agent stopped: what waited is not acknowledged
    assert stream.acked == []


async def test_a_redelivered_record_is_skipped_and_acknowledged() -> None:
    saved = {Positions.key("a", "t", 0): b"5"}
    redelivered: list[int] = []
    cp, agent, stream, _ = make(
        [ev(4), ev(5), ev(6)], Pace(batch=1), saved=saved,
        on_redelivered=lambda: redelivered.append(1),
    )  # fmt: skip
    task = await run_until_drained(cp, stream)
    assert [[r.offset for r in b] for b in agent.applied] == [[6]]
    assert len(redelivered) == 2
    assert stream.acked == [4, 5, 6]
    await stop(task)


async def test_records_the_consumer_skipped_are_read_back_and_applied_first() -> None:
    saved = {Positions.key("a", "t", 0): b"3"}
    cp, agent, stream, journal = make(
        [ev(7)], Pace(batch=1), saved=saved, reader=Reader(list(range(10)))
    )
    task = await run_until_drained(cp, stream)
    (batch,) = agent.applied
    assert [r.offset for r in batch] == [4, 5, 6, 7]
    assert batch[0] == Record("t", 0, 4, b"k", b"old", 2.5)  # read back: ms -> seconds
    assert batch[-1] == Record("t", 0, 7, b"k", b"v7", 1.5)
    assert "position 7" in journal
    await stop(task)


async def test_unchecked_topics_are_applied_without_positions() -> None:
    saved = {Positions.key("a", "ticks", 0): b"9"}
    cp, agent, stream, journal = make(
        [ev(0, topic="ticks"), ev(0, topic="ticks")], Pace(batch=1), saved=saved,
        unchecked={"ticks"},
    )  # fmt: skip
    task = await run_until_drained(cp, stream)
    assert len(agent.applied) == 2
    assert not any(j.startswith("position") for j in journal)
    await stop(task)


async def test_revocation_drops_the_buffers_unacknowledged() -> None:
    cp, agent, stream, journal = make([ev(0), ev(1)], Pace(batch=10))
    task = await run_until_drained(cp, stream)
    cp.drop()
    assert agent.dropped == 1 and agent.held == [] and cp.unacked == 0
    async with asyncio.timeout(5):
        await cp.commit()  # the next commit has nothing of before
    assert stream.acked == [] and not any(j.startswith("write") for j in journal)
    await stop(task)


async def test_the_timer_commits_records_older_than_the_age() -> None:
    cp, _agent, stream, journal = make([ev(0)], Pace(batch=10, max_age_s=0.0, poll_s=0.0))
    task = await run_until_drained(cp, stream)
    timer = asyncio.create_task(cp.flush_when_old())
    async with asyncio.timeout(5):
        await stream.some_acked.wait()  # the timer's commit acked the record
    assert journal == ["sent 0", "write 0", "position 0", "ack 0"]
    await stop(timer)
    await stop(task)


async def test_no_reference_is_kept_to_acknowledged_events() -> None:
    """Faust waits, at a rebalance and at shutdown, until each message an agent took is
    acknowledged by every agent of its topic or is garbage. One that only some agents took
    (Faust clears the other agents' queues when it stops the flow) is never acknowledged, so
    a reference kept to it (here, in the positions, or as the stream's current event, which
    Faust's iterator also keeps) held that wait, and the worker, forever."""
    evs = [ev(0), ev(1, partition=1), ev(2, partition=1)]
    refs = [weakref.ref(e) for e in evs]
    cp, _agent, stream, _ = make(evs, Pace(batch=2))
    del evs
    task = await run_until_drained(cp, stream)
    gc.collect()
    assert stream.acked == [0, 1] and cp.unacked == 1
    assert [r() is None for r in refs] == [True, True, False]  # the last one waits for a commit
    await cp.commit()
    gc.collect()
    assert [r() is None for r in refs] == [True, True, True]
    await stop(task)


async def test_a_timed_commit_leaves_the_stream_s_current_event_as_it_was() -> None:
    """The timer commits while the agent waits for Faust's next record: an event it left as the
    stream's current one would be held, and acknowledged again for a record Faust skips."""
    cp, _agent, stream, journal = make([ev(0)], Pace(batch=10, max_age_s=0.0, poll_s=0.0))
    task = await run_until_drained(cp, stream)
    assert stream.current_event is None
    timer = asyncio.create_task(cp.flush_when_old())
    async with asyncio.timeout(5):
        await stream.some_acked.wait()
    assert "position 0" in journal and stream.current_event is None
    await stop(timer)
    await stop(task)


@pytest.mark.parametrize("stopping", [False, True])
async def test_a_failing_timed_commit_crashes_the_app_unless_it_is_stopping(
    stopping: bool,
) -> None:
    app = App(should_stop=stopping)
    cp, agent, stream, _ = make([ev(0)], Pace(batch=10, max_age_s=0.0, poll_s=0.0), app=app)
    task = await run_until_drained(cp, stream)
    agent.fail_write = True
    async with asyncio.timeout(5):
        if stopping:
            await cp.flush_when_old()  # returns: the records are read again after the stop
        else:
            with pytest.raises(RuntimeError, match="disk full"):
                await cp.flush_when_old()
    assert [str(e) for e in app.crashed] == ([] if stopping else ["disk full"])
    assert stream.acked == [] and cp.unacked == 0 and agent.dropped == 1
    await stop(task)


async def test_no_timer_without_an_age() -> None:
    cp, _, _, _ = make([], Pace())
    async with asyncio.timeout(5):
        await cp.flush_when_old()
