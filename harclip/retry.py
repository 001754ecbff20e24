"""The one retry policy: exponential backoff with a cap, optional jitter, and a give-up rule.

`Backoff` is the policy (pure: the pause after n failures in a row, and when to give up);
`Attempts` counts one loop's failures in a row against it (with an injected clock);
`retry_async` / `retry_sync` call a function until it succeeds, classifying each error with the
error types of `harclip.errors` (`retriable`) unless the caller passes its own rule. Every
retrying loop of the project (sinks, control follower, live feeds, client reconnects, camera
reconnects, webhooks) takes its pauses from here, each with its own `Backoff` constants.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from harclip.errors import HarclipError

T = TypeVar("T")

Clock = Callable[[], float]  # monotonic seconds
Rand = Callable[[], float]  # uniform in [0, 1)
OnRetry = Callable[[Exception, float], None]  # (the error, the pause before the next try, s)


@dataclass(frozen=True, slots=True)
class Backoff:
    """Pauses `first_s`, `first_s * factor`, ... up to `max_s` seconds between tries; each one
    shortened by up to `jitter` of itself (0: none, 0.5: down to half) so that clients that failed
    together do not come back together. Gives up after `retries` retries (None: never) or once
    `within_s` seconds passed since the first failure in a row (None: never)."""

    first_s: float
    max_s: float
    factor: float = 2.0
    jitter: float = 0.0
    retries: int | None = None
    within_s: float | None = None

    def __post_init__(self) -> None:
        if not 0 < self.first_s <= self.max_s or self.factor < 1 or not 0 <= self.jitter <= 1:
            raise ValueError(f"invalid backoff {self}")

    def pause(self, failures: int, rand: Rand = random.random) -> float:
        """The pause (seconds) after `failures` failures in a row (1: after the first)."""
        base = min(self.max_s, self.first_s * self.factor ** max(0, failures - 1))
        return base * (1.0 - self.jitter * rand()) if self.jitter else base

    def gives_up(self, failures: int, failing_for_s: float = 0.0) -> bool:
        """Whether to stop after `failures` failures in a row, the first `failing_for_s` ago."""
        if self.retries is not None and failures > self.retries:
            return True
        return self.within_s is not None and failing_for_s > self.within_s


SINK_RETRY = Backoff(0.1, 5.0)  # a sink that did not take a batch: the worker's and the app's


def retriable(e: BaseException) -> bool:
    """The project's rule: a `HarclipError` whose kind is transient (`Unavailable`,
    `SinkUnavailable`, `Overloaded`, ...); anything else is for good or a bug."""
    return isinstance(e, HarclipError) and e.retriable


class Attempts:
    """One loop's failures in a row, against `policy`: `failed()` gives the pause before the next
    try (None: give up), `succeeded()` starts the count again."""

    def __init__(
        self, policy: Backoff, *, clock: Clock = time.monotonic, rand: Rand = random.random
    ) -> None:
        self.policy = policy
        self.failures = 0
        self._clock = clock
        self._rand = rand
        self._since = 0.0  # clock time of the first failure in a row

    @property
    def pause_s(self) -> float:
        """The pause the next failure gets (before jitter), seconds; for log lines."""
        return self.policy.pause(self.failures + 1, lambda: 0.0)

    def failed(self, *, deadline: float | None = None) -> float | None:
        """Count a failure: the pause before the next try (seconds), or None when the policy
        gives up or the clock passed `deadline` (clock seconds)."""
        now = self._clock()
        if self.failures == 0:
            self._since = now
        self.failures += 1
        if self.policy.gives_up(self.failures, now - self._since):
            return None
        if deadline is not None and now > deadline:
            return None
        return self.policy.pause(self.failures, self._rand)

    def succeeded(self) -> None:
        self.failures = 0


async def retry_async(
    call: Callable[[], Awaitable[T]],
    policy: Backoff,
    *,
    retry_on: Callable[[Exception], bool] = retriable,
    on_retry: OnRetry | None = None,
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    clock: Clock = time.monotonic,
    rand: Rand = random.random,
) -> T:
    """`await call()` until it returns; an error `retry_on` refuses is raised at once, the last
    retriable one when the policy gives up. `on_retry(error, pause_s)` before each pause."""
    attempts = Attempts(policy, clock=clock, rand=rand)
    while True:
        try:
            return await call()
        except Exception as e:
            if not retry_on(e):
                raise
            pause = attempts.failed()
            if pause is None:
                raise
            if on_retry is not None:
                on_retry(e, pause)
        await sleep(pause)


def retry_sync(
    call: Callable[[], T],
    policy: Backoff,
    *,
    retry_on: Callable[[Exception], bool] = retriable,
    on_retry: OnRetry | None = None,
    sleep: Callable[[float], object] = time.sleep,
    clock: Clock = time.monotonic,
    rand: Rand = random.random,
) -> T:
    """`retry_async` for blocking code (`sleep` may be an `Event.wait`, to stop early)."""
    attempts = Attempts(policy, clock=clock, rand=rand)
    while True:
        try:
            return call()
        except Exception as e:
            if not retry_on(e):
                raise
            pause = attempts.failed()
            if pause is None:
                raise
            if on_retry is not None:
                on_retry(e, pause)
        sleep(pause)
