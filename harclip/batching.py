"""Micro-batching shared by the worker and the API: a pure `collect_batch` over any blocking
source (LitServe's `collate_requests`), a two-lane queue that serves live work first, and an
asyncio `MicroBatcher` for concurrent requests.

`collect_batch` knows nothing of Kafka: it takes items from `source.get(timeout_s)` until it has
`max_size` of them or `max_wait_s` seconds passed since the first one, and sets aside items that
are older than `max_age_s` (and may be dropped). Time comes from an injected clock, so tests
drive it with a plain queue and no sleeps.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar, cast

from harclip.errors import Overloaded

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")
T_co = TypeVar("T_co", covariant=True)

Clock = Callable[[], float]  # seconds, monotonic


class Source(Protocol[T_co]):
    """Anything with a blocking `get`: `queue.Queue`, `TwoLaneQueue`, a test double."""

    def get(self, block: bool = True, timeout: float | None = None) -> T_co:
        """The next item; raises `queue.Empty` after `timeout` seconds without one."""
        ...


class Aged(Protocol):
    """An item that knows its birth time (on the batcher's clock, seconds) and whether it may be
    dropped when stale (live frames may, uploads and requests may not)."""

    @property
    def born_at(self) -> float: ...

    @property
    def droppable(self) -> bool: ...


@dataclass(slots=True)
class Batch(Generic[T]):
    """What one `collect_batch` call gathered, in arrival order."""

    items: list[T] = field(default_factory=list)
    stale: list[T] = field(default_factory=list)  # older than max_age_s: the caller drops them
    started_at: float = 0.0  # clock time of the first item, seconds

    def __len__(self) -> int:
        return len(self.items)

    @property
    def empty(self) -> bool:
        return not self.items and not self.stale


def _is_stale(item: object, now: float, max_age_s: float | None) -> bool:
    if max_age_s is None or not getattr(item, "droppable", False):
        return False
    return now - cast(Aged, item).born_at > max_age_s


def collect_batch(
    source: Source[T],
    max_size: int,
    max_wait_s: float,
    max_age_s: float | None = None,
    *,
    first_timeout_s: float | None = None,
    clock: Clock = time.monotonic,
) -> Batch[T]:
    """Collect up to `max_size` items, waiting at most `max_wait_s` seconds after the first.

    Waits up to `first_timeout_s` seconds for the first item (None: forever) and returns an empty
    batch if none came. Items that are `Aged`, droppable and older than `max_age_s` seconds go to
    `Batch.stale` and do not count towards `max_size`; a batch of only stale items returns at once.
    """
    if max_size < 1:
        raise ValueError(f"max_size must be >= 1, got {max_size}")
    batch: Batch[T] = Batch()
    try:
        first = source.get(timeout=first_timeout_s)
    except queue.Empty:
        return batch
    now = clock()
    batch.started_at = now
    deadline = now + max_wait_s
    (batch.stale if _is_stale(first, now, max_age_s) else batch.items).append(first)
    while len(batch.items) < max_size:
        left = deadline - now
        try:
            item = source.get(block=left > 0, timeout=left if left > 0 else None)
        except queue.Empty:
            break
        now = clock()
        (batch.stale if _is_stale(item, now, max_age_s) else batch.items).append(item)
    return batch


class TwoLaneQueue(Generic[T]):
    """A thread-safe queue with a live lane served before a bulk lane.

    `put` never blocks or refuses: the producer side checks `room(lane)` and adds no more than
    that (the worker fetches at most the room of each lane it reads), so a lane holds at most
    `capacity`.
    """

    LIVE = 0
    BULK = 1

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self._lanes: tuple[deque[T], deque[T]] = (deque(), deque())
        self._cond = threading.Condition()

    def room(self, lane: int) -> int:
        with self._cond:
            return self.capacity - len(self._lanes[lane])

    def sizes(self) -> tuple[int, int]:
        with self._cond:
            return len(self._lanes[0]), len(self._lanes[1])

    def put(self, item: T, lane: int) -> None:
        with self._cond:
            self._lanes[lane].append(item)
            self._cond.notify()

    def get(self, block: bool = True, timeout: float | None = None) -> T:
        """The oldest live item, else the oldest bulk item; `queue.Empty` after `timeout` s."""
        with self._cond:
            if not self._cond.wait_for(self._any, timeout if block else 0):
                raise queue.Empty
            lane = self._lanes[0] if self._lanes[0] else self._lanes[1]
            return lane.popleft()

    def remove_if(self, pred: Callable[[T], bool]) -> list[T]:
        """Take out (and return) every queued item for which `pred` holds."""
        with self._cond:
            out: list[T] = []
            for lane in self._lanes:
                keep: list[T] = []
                for x in lane:
                    (out if pred(x) else keep).append(x)
                lane.clear()
                lane.extend(keep)
            return out

    def wake(self) -> None:
        """Wake a blocked `get` (it rechecks; used at shutdown with an empty queue)."""
        with self._cond:
            self._cond.notify_all()

    def _any(self) -> bool:
        return bool(self._lanes[0] or self._lanes[1])


# ----------------------------------------------------------------------------- asyncio batcher


@dataclass(slots=True)
class _Pending(Generic[T, R]):
    item: T
    future: asyncio.Future[R]


class _Closed:
    pass


_CLOSE = _Closed()


class MicroBatcher(Generic[T, R]):
    """Batches concurrent `submit(item)` calls: one loop collects up to `max_size` items, at most
    `max_wait_s` seconds after the first, and runs `fn(items) -> results` in a thread.

    `fn` must return exactly one result per item, in order; otherwise (or if it raises) every
    caller of that batch gets the error (LitServe checks `len(outputs)` the same way).
    With `max_queue`, at most that many items wait for a batch: more raise `Overloaded` at once
    (a request's items are taken all or none), so memory stays bounded under overload.
    """

    def __init__(
        self,
        fn: Callable[[Sequence[T]], Sequence[R]],
        *,
        max_size: int,
        max_wait_s: float,
        on_batch: Callable[[int], None] | None = None,
        max_queue: int | None = None,
    ) -> None:
        if max_size < 1:
            raise ValueError(f"max_size must be >= 1, got {max_size}")
        if max_queue is not None and max_queue < 1:
            raise ValueError(f"max_queue must be >= 1, got {max_queue}")
        self._fn = fn
        self._max_size = max_size
        self._max_wait_s = max_wait_s
        self._on_batch = on_batch
        self._max_queue = max_queue
        self._queue: asyncio.Queue[_Pending[T, R] | _Closed] | None = None
        self._task: asyncio.Task[None] | None = None
        self.batches = 0  # batches run so far

    async def start(self) -> None:
        """Start the collecting loop on the running event loop."""
        if self._task is not None:
            return
        self._queue = asyncio.Queue()
        self._task = asyncio.create_task(self._loop(), name="micro-batcher")

    @property
    def queued(self) -> int:
        """Items waiting for a batch (not those of the batch that runs)."""
        return 0 if self._queue is None else self._queue.qsize()

    def has_room(self, n: int) -> bool:
        """Whether `n` more items would be taken now (an empty queue takes any number)."""
        queued = self.queued
        return self._max_queue is None or queued == 0 or queued + n <= self._max_queue

    async def submit(self, item: T) -> R:
        """Queue `item`; returns its result once its batch has run. `Overloaded` when the queue
        is full."""
        (result,) = await self.submit_many([item])
        return result

    async def submit_many(self, items: Sequence[T]) -> list[R]:
        """Queue every one of `items`, or none (`Overloaded` when they do not fit); their
        results, in order, once their batches have run."""
        if self._queue is None or self._task is None or self._task.done():
            raise RuntimeError("MicroBatcher is not running: call start() first")
        if not self.has_room(len(items)):
            raise Overloaded(
                f"{self.queued} images wait for the engine; at most {self._max_queue} may"
            )
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[R]] = []
        for item in items:
            futures.append(loop.create_future())
            self._queue.put_nowait(_Pending(item, futures[-1]))
        return list(await asyncio.gather(*futures))

    async def close(self) -> None:
        """Finish what was submitted, then stop the loop."""
        if self._task is None or self._queue is None:
            return
        self._queue.put_nowait(_CLOSE)
        await self._task
        self._task = None

    async def _loop(self) -> None:
        assert self._queue is not None
        q = self._queue
        closing = False
        while not closing:
            first = await q.get()
            if isinstance(first, _Closed):
                break
            batch = [first]
            deadline = asyncio.get_running_loop().time() + self._max_wait_s
            while len(batch) < self._max_size:
                left = deadline - asyncio.get_running_loop().time()
                try:
                    nxt = q.get_nowait() if left <= 0 else await asyncio.wait_for(q.get(), left)
                except (asyncio.QueueEmpty, TimeoutError):
                    break
                if isinstance(nxt, _Closed):
                    closing = True
                    break
                batch.append(nxt)
            await self._run(batch)

    async def _run(self, batch: list[_Pending[T, R]]) -> None:
        live = [p for p in batch if not p.future.done()]  # a cancelled caller needs no result
        if not live:
            return
        self.batches += 1
        if self._on_batch is not None:
            self._on_batch(len(live))
        try:
            results = await asyncio.to_thread(self._fn, [p.item for p in live])
            if len(results) != len(live):
                raise RuntimeError(
                    f"batch function returned {len(results)} results for {len(live)} items"
                )
        except Exception as e:  # every caller of the batch gets the error
            _fail_all(live, e)
            return
        for p, r in zip(live, results, strict=True):
            if not p.future.done():
                p.future.set_result(r)


def _fail_all(pending: Iterable[_Pending[T, R]], error: BaseException) -> None:
    for p in pending:
        if not p.future.done():
            p.future.set_exception(error)
