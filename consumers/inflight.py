"""The work between fetch and commit: the two-lane queue the engine thread collects batches from,
the batch slots (at most `max_inflight_batches` batches not yet committed), per-partition counts
of records queued or in a batch, and the commit gate with the offsets committed so far."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import Counter
from collections.abc import Callable

from aiokafka.structs import TopicPartition

from consumers.work import BatchResult, CommitGate, Work
from harclip.batching import TwoLaneQueue

_POLL_S = 0.1  # on rebalance: how often the wait for in-flight batches re-checks, seconds


class InFlight:
    """What the worker holds between `getmany` and the commit of each batch."""

    def __init__(self, max_batch: int, max_batches: int) -> None:
        self.queue: TwoLaneQueue[Work] = TwoLaneQueue(capacity=2 * max_batch)
        self.slots = threading.Semaphore(max_batches)  # taken per batch, released after commit
        self._outstanding: Counter[TopicPartition] = Counter()  # queued or in a batch
        self._settled = asyncio.Event()  # set after each batch is accounted for
        self.last_committed: dict[TopicPartition, int] = {}
        self._gate = CommitGate()

    @property
    def pending(self) -> int:
        """Records queued or in a batch, all partitions together."""
        return sum(self._outstanding.values())

    def put(self, tp: TopicPartition, works: list[Work], lane: int) -> None:
        for w in works:
            self.queue.put(w, lane)
        self._outstanding[tp] += len(works)

    def drop_queued(self, pred: Callable[[Work], bool]) -> None:
        """Forget the queued records `pred` picks (they are never batched)."""
        self._forget(self.queue.remove_if(pred))

    def offsets(
        self, result: BatchResult, delivered: bool, assigned: set[TopicPartition]
    ) -> dict[TopicPartition, int]:
        """The offsets to commit after `result` (see `CommitGate`)."""
        return self._gate.after(result, delivered, assigned)

    def settle(self, result: BatchResult) -> None:
        """`result`'s batch is accounted for (committed or held back): free its records."""
        self._forget(result.works)
        self._settled.set()

    async def wait_settled(self, partitions: set[TopicPartition], timeout_s: float) -> bool:
        """Wait until no record of `partitions` is queued or in a batch; False after
        `timeout_s` seconds."""
        deadline = time.monotonic() + timeout_s
        while any(self._outstanding[tp] > 0 for tp in partitions):
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self._settled.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._settled.wait(), min(left, _POLL_S))
        return True

    def _forget(self, works: list[Work]) -> None:
        """`works` are no longer queued or in a batch."""
        for w in works:
            self._outstanding[w.tp] -= 1
        self._outstanding = +self._outstanding  # drop zero counts
