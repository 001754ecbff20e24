"""The fetch loop's backpressure (`Fetcher._backpressure`, `_wait_for_room`) against a consumer
that keeps only the state backpressure touches (assignment, paused partitions, polls): only the
partitions whose lane has room are read; live work waiting keeps uploads unread; a full queue
does not pause anything (the prefetched records stay) until the lanes have been full for
`_STALL_S`, then everything is paused and the consumer polled; room resumes them."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka.structs import TopicPartition

from consumers import fetch
from consumers.fetch import Fetcher
from consumers.inflight import InFlight
from consumers.metrics import WorkerMetrics
from consumers.work import BULK, LIVE
from harclip.config import Settings

S = Settings()
LIVE_TP = TopicPartition(S.kafka.topics.frames, 0)
BULK_TP = TopicPartition(S.kafka.topics.uploads, 0)


class Consumer:
    def __init__(self) -> None:
        self._paused: set[TopicPartition] = set()
        self.polls = 0

    def assignment(self) -> set[TopicPartition]:
        return {LIVE_TP, BULK_TP}

    def paused(self) -> set[TopicPartition]:
        return set(self._paused)

    def pause(self, *tps: TopicPartition) -> None:
        self._paused |= set(tps)

    def resume(self, *tps: TopicPartition) -> None:
        self._paused -= set(tps)

    async def getmany(self, *tps: TopicPartition, **_: Any) -> dict[TopicPartition, list[Any]]:
        self.polls += 1
        return {}


@pytest.fixture
def fetcher() -> Fetcher:
    f = Fetcher(S, 32, InFlight(max_batch=2, max_batches=2), WorkerMetrics())
    f._consumer = Consumer()  # type: ignore[assignment]
    return f


def fill(f: Fetcher, lane: int, n: int) -> None:
    for i in range(n):
        f._inflight.queue.put(i, lane)  # type: ignore[arg-type]


def test_lanes_with_room_are_read(fetcher: Fetcher) -> None:
    tps, room = fetcher._backpressure(hold=False)
    assert set(tps) == {LIVE_TP, BULK_TP} and room == 4
    fill(fetcher, BULK, 4)  # the bulk lane is full: only live is read
    assert fetcher._backpressure(hold=False) == ([LIVE_TP], 4)


def test_live_work_waiting_keeps_uploads_unread(fetcher: Fetcher) -> None:
    fill(fetcher, LIVE, 1)
    assert fetcher._backpressure(hold=False) == ([LIVE_TP], 3)


def test_hold_reads_nothing(fetcher: Fetcher) -> None:
    assert fetcher._backpressure(hold=True) == ([], 0)


async def test_a_full_queue_waits_for_room_without_pausing(fetcher: Fetcher) -> None:
    c = fetcher._consumer
    assert isinstance(c, Consumer)
    fill(fetcher, LIVE, 4)
    fill(fetcher, BULK, 4)
    assert fetcher._backpressure(hold=False)[0] == []
    loop = asyncio.get_running_loop()
    loop.call_later(0.01, fetcher.freed)  # the engine took a batch
    start = loop.time()
    await fetcher._wait_for_room()
    assert loop.time() - start < fetch.POLL_MS / 1000  # woken by the room, not the timeout
    assert c.paused() == set() and c.polls == 0  # the prefetched records stay


async def test_a_stall_pauses_everything_and_polls_until_room_resumes(
    fetcher: Fetcher, monkeypatch: pytest.MonkeyPatch
) -> None:
    c = fetcher._consumer
    assert isinstance(c, Consumer)
    monkeypatch.setattr(fetch, "_STALL_S", 0.0)
    fill(fetcher, BULK, 4)
    fill(fetcher, LIVE, 4)
    await fetcher._wait_for_room()
    assert c.paused() == {LIVE_TP, BULK_TP} and c.polls == 1  # still a member of the group
    fetcher._inflight.queue.get()  # the engine took one live frame
    assert fetcher._backpressure(hold=False) == ([LIVE_TP], 1)
    assert c.paused() == set()
