"""collect_batch, TwoLaneQueue and MicroBatcher without Kafka or sleeps: a fake clock that a fake
source advances when asked to wait, and events where an engine thread must be held."""

from __future__ import annotations

import asyncio
import queue
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import pytest

from harclip.batching import MicroBatcher, TwoLaneQueue, collect_batch
from harclip.errors import Overloaded


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class FakeSource:
    """Items arrive at given clock times; a `get` that would wait advances the clock instead."""

    def __init__(self, clock: FakeClock, arrivals: Sequence[tuple[float, object]]) -> None:
        self.clock = clock
        self.arrivals = deque(sorted(arrivals, key=lambda a: a[0]))
        self.waits: list[float | None] = []

    def get(self, block: bool = True, timeout: float | None = None) -> object:
        self.waits.append(timeout if block else 0.0)
        if self.arrivals and self.arrivals[0][0] <= self.clock.now:
            return self.arrivals.popleft()[1]
        if not block or not self.arrivals:
            if block and timeout is not None:
                self.clock.now += timeout
            raise queue.Empty
        at = self.arrivals[0][0]
        if timeout is not None and at > self.clock.now + timeout:
            self.clock.now += timeout
            raise queue.Empty
        self.clock.now = at
        return self.arrivals.popleft()[1]


@dataclass
class Item:
    name: str
    born_at: float
    droppable: bool = True


def test_full_batch_returns_without_waiting() -> None:
    clock = FakeClock()
    src = FakeSource(clock, [(100.0, i) for i in range(10)])
    batch = collect_batch(src, 4, 0.05, clock=clock)
    assert batch.items == [0, 1, 2, 3]
    assert clock.now == 100.0 and batch.started_at == 100.0


def test_partial_batch_closes_at_max_wait_after_first_item() -> None:
    clock = FakeClock()
    src = FakeSource(clock, [(100.5, "a"), (100.52, "b"), (100.6, "late")])
    batch = collect_batch(src, 8, 0.05, first_timeout_s=1.0, clock=clock)
    assert batch.items == ["a", "b"]
    assert clock.now == pytest.approx(100.55)  # first at 100.5 + 50 ms window
    assert list(src.arrivals) == [(100.6, "late")]


def test_no_item_within_first_timeout_gives_empty_batch() -> None:
    clock = FakeClock()
    batch = collect_batch(FakeSource(clock, []), 8, 0.05, first_timeout_s=0.2, clock=clock)
    assert batch.empty and len(batch) == 0
    assert clock.now == pytest.approx(100.2)


def test_zero_wait_takes_only_what_is_already_there() -> None:
    clock = FakeClock()
    src = FakeSource(clock, [(100.0, 1), (100.0, 2), (100.001, 3)])
    assert collect_batch(src, 8, 0.0, clock=clock).items == [1, 2]


def test_stale_droppable_items_are_set_aside_and_do_not_count() -> None:
    clock = FakeClock()
    old, fresh = Item("old", born_at=97.0), Item("fresh", born_at=99.9)
    upload = Item("upload", born_at=50.0, droppable=False)
    src = FakeSource(clock, [(100.0, old), (100.0, fresh), (100.0, upload), (100.0, old)])
    batch = collect_batch(src, 2, 0.01, max_age_s=2.0, clock=clock)
    assert [i.name for i in batch.items] == ["fresh", "upload"]
    assert [i.name for i in batch.stale] == ["old"]  # the 2nd 'old' stays queued: batch full


def test_only_stale_items_return_at_once() -> None:
    clock = FakeClock()
    src = FakeSource(clock, [(100.0, Item("old", 90.0))])
    batch = collect_batch(src, 4, 0.05, max_age_s=1.0, clock=clock)
    assert not batch.items and len(batch.stale) == 1 and not batch.empty


def test_max_size_must_be_positive() -> None:
    with pytest.raises(ValueError):
        collect_batch(FakeSource(FakeClock(), []), 0, 0.01)


def test_two_lane_queue_serves_live_first_and_reports_room() -> None:
    q: TwoLaneQueue[str] = TwoLaneQueue(capacity=2)
    q.put("u1", q.BULK)
    q.put("l1", q.LIVE)
    q.put("u2", q.BULK)
    q.put("u3", q.BULK)  # past capacity: allowed, room goes negative
    assert q.room(q.BULK) == -1 and q.room(q.LIVE) == 1
    assert [q.get(timeout=0) for _ in range(4)] == ["l1", "u1", "u2", "u3"]
    with pytest.raises(queue.Empty):
        q.get(block=False)


def test_two_lane_queue_remove_if() -> None:
    q: TwoLaneQueue[int] = TwoLaneQueue(capacity=8)
    for i in range(6):
        q.put(i, i % 2)
    assert sorted(q.remove_if(lambda x: x > 2)) == [3, 4, 5]
    assert q.sizes() == (2, 1)


def test_collect_batch_over_two_lane_queue() -> None:
    q: TwoLaneQueue[str] = TwoLaneQueue(capacity=8)
    for name in ("u1", "u2"):
        q.put(name, q.BULK)
    q.put("l1", q.LIVE)
    assert collect_batch(q, 2, 0.0).items == ["l1", "u1"]


async def test_micro_batcher_batches_concurrent_submits() -> None:
    seen: list[int] = []

    def double(items: Sequence[int]) -> list[int]:
        seen.append(len(items))
        return [2 * i for i in items]

    b: MicroBatcher[int, int] = MicroBatcher(double, max_size=8, max_wait_s=1.0)
    await b.start()
    results = await asyncio.gather(*(b.submit(i) for i in range(20)))
    await b.close()
    assert results == [2 * i for i in range(20)]
    assert sum(seen) == 20 and max(seen) == 8 and len(seen) < 20


async def test_micro_batcher_fails_every_caller_of_a_bad_batch() -> None:
    def wrong_count(items: Sequence[int]) -> list[int]:
        return [1]

    b: MicroBatcher[int, int] = MicroBatcher(wrong_count, max_size=4, max_wait_s=1.0)
    await b.start()
    outcomes = await asyncio.gather(*(b.submit(i) for i in range(4)), return_exceptions=True)
    await b.close()
    assert all(isinstance(o, RuntimeError) for o in outcomes)


async def test_micro_batcher_requires_start() -> None:
    b: MicroBatcher[int, int] = MicroBatcher(list, max_size=2, max_wait_s=0.0)
    with pytest.raises(RuntimeError, match="start"):
        await b.submit(1)


async def test_micro_batcher_queue_is_bounded() -> None:
    """With the engine busy, at most `max_queue` items wait; more are refused at once, a
    request's items all or none, and the queue takes work again once it drains."""
    entered, release = threading.Event(), threading.Event()

    def blocked(items: Sequence[int]) -> list[int]:
        entered.set()
        release.wait()
        return list(items)

    b: MicroBatcher[int, int] = MicroBatcher(blocked, max_size=1, max_wait_s=0.0, max_queue=3)
    await b.start()
    running = asyncio.ensure_future(b.submit(0))
    await asyncio.to_thread(entered.wait)  # item 0 is in the engine, the queue is empty
    waiting = asyncio.ensure_future(b.submit_many([1, 2]))
    await asyncio.sleep(0)  # one turn of the loop: `submit_many` queues before it waits
    assert b.queued == 2 and not b.has_room(2) and b.has_room(1)
    with pytest.raises(Overloaded):
        await b.submit_many([3, 4])  # would make 4: neither is taken
    assert b.queued == 2
    release.set()
    assert await running == 0 and await waiting == [1, 2]
    assert await b.submit_many([5, 6, 7]) == [5, 6, 7]
    await b.close()
