"""Evidence yields to event detection: while the agents are behind, builds wait (bounded).

An event is what the operator is waiting for; its snapshot and clip can come a little later. So
when the `track` agent is behind (the last prediction it applied arrived on Kafka more than
`EVIDENCE_DEFER_LAG_S` before it was applied: a backlog after a restart, an outage or a burst),
the evidence step holds each build back until the agents are within the threshold again, so the
CPU, Kafka, the object store and the sinks serve the agents first. The wait is bounded, so
evidence is never starved and its frames are still on Kafka when it is built: an event's build
starts at the latest `EVIDENCE_DEFER_MAX_S` after the first build of the episode waited, and
never later than half the frames' retention (`HARCLIP_KAFKA__FRAMES_RETENTION_MS`) after its
window's start on the wall clock. Nothing is skipped: a deferred event stays in the evidence
backlog (`harclip_stream_evidence_backlog`), the waiting is counted
(`harclip_stream_evidence_deferring`, `harclip_stream_evidence_deferred_seconds_total`), and a
log line says when evidence starts and stops yielding.

The bound is per episode: from the first build that waited, the agents get at most
`EVIDENCE_DEFER_MAX_S` of head start; if they are still behind then, the lag is a sizing problem
rather than a backlog, and evidence stops yielding (runs alongside, as without this) until the
agents have caught up once. So a persistent lag never turns into evidence that waits for ever.

`Behind` is the agents' lag as `track` last saw it: a lag older than `STALE_S` counts as none
(no prediction applied lately: nothing to yield to).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

log = logging.getLogger("stream.evidence")

STALE_S = 2.0  # a lag seen longer ago than this is no lag: the agents are idle
POLL_S = 0.5  # how often a deferred build looks at the lag again


def wall_s() -> float:
    return time.time()


class Behind:
    """The lag (s) of the last prediction the agents applied, and when (wall clock, s)."""

    __slots__ = ("_at_s", "_clock", "_lag_s")

    def __init__(self, clock: Callable[[], float] = wall_s) -> None:
        self._lag_s = 0.0
        self._at_s = float("-inf")
        self._clock = clock

    def saw(self, lag_s: float, at_s: float) -> None:
        """`track`, for each prediction applied: its lag and the wall time it was applied."""
        self._lag_s, self._at_s = lag_s, at_s

    def lag_s(self) -> float:
        """The agents' lag now: the last one seen, 0 when none was seen for `STALE_S`."""
        return self._lag_s if self._clock() - self._at_s <= STALE_S else 0.0


@dataclass(frozen=True, slots=True)
class Deferral:
    """How long an event's build may wait for the agents: `lag_s` (0: never), `max_s`, and
    `retention_s` (the frames topic's: a build starts by window start + retention / 2)."""

    lag_s: float
    max_s: float
    retention_s: float

    def deadline_s(self, now_s: float, window_start_ms: int) -> float:
        """The wall time (s) after which the build goes ahead whatever the lag."""
        return min(now_s + self.max_s, window_start_ms / 1000 + self.retention_s / 2)


class Yielder:
    """`wait` before each build: the seconds it deferred (0 when the agents keep up)."""

    def __init__(
        self, behind: Behind, deferral: Deferral, *,
        on_deferring: Callable[[int], None] = lambda n: None,
        on_deferred: Callable[[float], None] = lambda s: None,
        clock: Callable[[], float] = wall_s,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:  # fmt: skip
        self._behind = behind
        self._d = deferral
        self._on_deferring = on_deferring
        self._on_deferred = on_deferred
        self._clock = clock
        self._sleep = sleep
        self.deferring = 0  # builds waiting now
        self.bounded = 0  # builds that went ahead at their deadline, the agents still behind
        self._episode: float | None = None  # when the first build of this lag waited

    def behind(self) -> bool:
        return self._d.lag_s > 0 and self._behind.lag_s() > self._d.lag_s

    async def wait(self, window_start_ms: int) -> float:
        if not self.behind():
            self._episode = None  # caught up: the next lag is a new episode
            return 0.0
        t0 = self._clock()
        if self._episode is None:
            self._episode = t0
        deadline = min(self._d.deadline_s(t0, window_start_ms), self._episode + self._d.max_s)
        if t0 >= deadline:
            return 0.0  # this episode's head start is spent, or the frames are getting old
        self._enter()
        try:
            while self.behind():
                if (left := deadline - self._clock()) <= 0:
                    self.bounded += 1
                    break
                await self._sleep(min(POLL_S, left))
            else:
                self._episode = None
        finally:
            waited = max(0.0, self._clock() - t0)
            self._leave(waited)
        return waited

    def _enter(self) -> None:
        if self.deferring == 0:
            log.info("evidence yields: the agents are %.1f s behind (> %.1f s); builds wait up "
                     "to %.0f s", self._behind.lag_s(), self._d.lag_s, self._d.max_s)  # fmt: skip
        self.deferring += 1
        self._on_deferring(self.deferring)

    def _leave(self, waited: float) -> None:
        self.deferring -= 1
        self._on_deferring(self.deferring)
        self._on_deferred(waited)
        if self.deferring == 0:
            log.info("evidence resumes (the agents are %.1f s behind; %d builds went ahead at "
                     "their bound so far)", self._behind.lag_s(), self.bounded)  # fmt: skip
