"""The worker's fetch loop (`consumers.fetch.Fetcher`) against the real Kafka: it fills the
in-flight queue up to its capacity and no further, a full queue pauses no partition (what the
consumer prefetched stays for the next batch), room a batch frees is filled again at once, live
work waiting keeps uploads unread, a hold pauses every partition after `_STALL_S` and polls, and
after all that every record has been queued exactly once, in order."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from aiokafka import ConsumerRebalanceListener
from aiokafka.structs import TopicPartition

from consumers.fetch import Fetcher
from consumers.inflight import InFlight
from consumers.metrics import WorkerMetrics
from consumers.work import BULK, LIVE, Work
from harclip.io.kafka import send_frame
from harclip.messages import Frame, new_frame_id, now_ms
from tests.support.scoped import Unique
from tests.support.worker import PARTITIONS, producer

N = 12
TIMEOUT_S = 30.0


class Assigned(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self) -> None:
        self.event = asyncio.Event()

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        self.event.clear()

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        if assigned:
            self.event.set()


async def until(cond: Callable[[], bool], what: str) -> None:
    async with asyncio.timeout(TIMEOUT_S):
        while not cond():
            await asyncio.sleep(0.02)  # polling a condition, not a fixed wait
    assert cond(), what


async def test_a_full_queue_keeps_the_prefetch_and_a_hold_pauses_after_a_stall(
    unique: Unique, sample_photos: list[Path]
) -> None:
    s = unique.settings
    jpeg = sample_photos[0].read_bytes()
    async with producer(s) as p:
        for i in range(N):
            at = now_ms()
            frame = Frame(new_frame_id(at), "cam-1", i, at, jpeg)
            await (await send_frame(p, s.kafka.topics.uploads, frame))
    inflight = InFlight(max_batch=2, max_batches=2)  # queue capacity 4 per lane
    f = Fetcher(s, 32, inflight, WorkerMetrics())
    listener = Assigned()
    await f.start(listener)
    consumer = f._consumer
    assert consumer is not None
    taken: list[Work] = []
    held = False
    stop = False
    task = asyncio.create_task(f.run(lambda: stop, lambda: held, None))
    await asyncio.wait_for(listener.event.wait(), TIMEOUT_S)
    queue = inflight.queue

    def take(n: int) -> None:  # what the engine thread does with a batch
        for _ in range(n):
            taken.append(queue.get(block=False))
        f.freed()

    try:
        await until(lambda: queue.sizes()[BULK] >= 4, "the bulk lane fills")
        assert queue.sizes()[BULK] == 4  # its capacity: no more than the room was fetched
        assert consumer.paused() == set()  # full, not paused: the prefetched records stay
        take(2)
        await until(lambda: queue.sizes()[BULK] == 4, "the freed room is filled again")
        assert consumer.paused() == set()
        assert queue.sizes()[BULK] == 4  # never past its capacity
        live_tps = {tp for tp in consumer.assignment() if tp.topic == s.kafka.topics.frames}
        queue.put(taken[0], LIVE)  # live work waiting: only live partitions are read
        assert set(f._backpressure(hold=False)[0]) == live_tps
        queue.get(block=False)
        held = True  # a sink is down: nothing more is fetched; after the stall, all paused
        take(2)
        await until(lambda: consumer.paused() == consumer.assignment(), "a hold pauses all")
        assert queue.sizes()[BULK] == 2
        held = False
        f.freed()  # the batch committed
        while len(taken) < N:
            await until(lambda: queue.sizes()[BULK] > 0, "records come again")
            take(queue.sizes()[BULK])
        assert consumer.paused() == set()
    finally:
        stop = True
        await task
        await f.stop()
        f.close_pool()
    uploads = [TopicPartition(s.kafka.topics.uploads, i) for i in range(PARTITIONS)]
    by_partition = {tp: [w.offset for w in taken if w.tp == tp] for tp in uploads}
    assert sum(len(v) for v in by_partition.values()) == N
    for offsets in by_partition.values():  # each record once, in order, the paused ones too
        assert offsets == list(range(len(offsets)))
    assert all(w.error is None and w.frame is not None for w in taken)
