"""Bounds on the predict work the API takes on, so that overload answers 503 `overloaded` with
`Retry-After` instead of growing memory: at most `HARCLIP_API__MAX_CONCURRENT_PREDICTS` requests
of the routes marked `bounded` at once (`api.gate` refuses the next one before its body is read),
and at most `HARCLIP_API__MAX_QUEUED_IMAGES` images waiting for an engine batch
(`harclip.batching.MicroBatcher`, whose `Overloaded` `api.errors` answers the same way)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from harclip.wire import ApiError

RETRY_AFTER_S = 1


def overloaded(message: str) -> ApiError:
    """The answer to work refused for overload."""
    return ApiError(503, "overloaded", message, {"Retry-After": str(RETRY_AFTER_S)})


async def bounded() -> None:
    """Marks a route (as a dependency) whose requests count against the concurrency limit; the
    gate admits them, this does nothing."""


bounded.harclip_bounded = True  # type: ignore[attr-defined]


class ConcurrencyLimit:
    """At most `limit` holders at once; `try_acquire` refuses instead of queueing (a queue of
    waiting requests would be memory too)."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        self.limit = limit
        self.in_flight = 0
        self.refused = 0
        self._waiters: list[tuple[Callable[[int], bool], asyncio.Future[None]]] = []

    def try_acquire(self) -> bool:
        if self.in_flight >= self.limit:
            self.refused += 1
            return False
        self.in_flight += 1
        self._changed()
        return True

    def release(self) -> None:
        self.in_flight -= 1
        self._changed()

    async def wait_until(self, predicate: Callable[[int], bool]) -> None:
        """Return once `predicate(in_flight)` holds (tests and shutdown wait on it)."""
        if predicate(self.in_flight):
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((predicate, future))
        await future

    def _changed(self) -> None:
        waiting = []
        for predicate, future in self._waiters:
            if future.done():
                continue
            if predicate(self.in_flight):
                future.set_result(None)
            else:
                waiting.append((predicate, future))
        self._waiters = waiting
