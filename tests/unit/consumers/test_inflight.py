"""InFlight: counts of records queued or in a batch per partition, the wait on a rebalance, and
the commit gate (no Kafka: plain `Work` items)."""

from __future__ import annotations

import asyncio

from aiokafka.structs import TopicPartition

from consumers.inflight import InFlight
from consumers.work import BULK, LIVE, BatchResult, Work

TP_A, TP_B = TopicPartition("frames", 0), TopicPartition("frames", 1)


def _work(tp: TopicPartition, offset: int, lane: int = LIVE) -> Work:
    return Work(tp, offset, None, b"x", [], lane, born_at=0.0)


def test_drop_queued_forgets_only_what_it_removes() -> None:
    inflight = InFlight(max_batch=4, max_batches=2)
    inflight.put(TP_A, [_work(TP_A, 0), _work(TP_A, 1)], LIVE)
    inflight.put(TP_B, [_work(TP_B, 0, BULK)], BULK)
    assert inflight.pending == 3
    inflight.drop_queued(lambda w: w.tp == TP_A)
    assert inflight.pending == 1


async def test_wait_settled_returns_once_the_batch_is_accounted_for() -> None:
    inflight = InFlight(max_batch=4, max_batches=2)
    works = [_work(TP_A, 0), _work(TP_A, 1)]
    inflight.put(TP_A, works, LIVE)
    waiting = asyncio.create_task(inflight.wait_settled({TP_A}, timeout_s=30))
    # runs after the waiter's first step (callbacks run in order): it wakes a parked waiter
    asyncio.get_running_loop().call_soon(inflight.settle, BatchResult(works=works, stale=works))
    assert await waiting
    assert await inflight.wait_settled({TP_B}, timeout_s=0)  # nothing of TP_B: at once


async def test_wait_settled_gives_up_after_its_timeout() -> None:
    inflight = InFlight(max_batch=4, max_batches=2)
    inflight.put(TP_A, [_work(TP_A, 0)], LIVE)
    assert not await inflight.wait_settled({TP_A}, timeout_s=0)


def test_a_batch_given_up_holds_its_partitions_back() -> None:
    inflight = InFlight(max_batch=4, max_batches=2)
    first, second = [_work(TP_A, 0)], [_work(TP_A, 1), _work(TP_B, 5)]
    assert inflight.offsets(BatchResult(works=first, stale=first), False, {TP_A, TP_B}) == {}
    later = inflight.offsets(BatchResult(works=second, stale=second), True, {TP_A, TP_B})
    assert later == {TP_B: 6}  # TP_A stays uncommitted: the next owner reads it again
