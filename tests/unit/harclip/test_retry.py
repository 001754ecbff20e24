"""The one retry policy, with an injected clock, random source and sleep: nothing really sleeps."""

from __future__ import annotations

import pytest

from harclip.errors import ConfigError, SinkUnavailable
from harclip.retry import SINK_RETRY, Attempts, Backoff, retriable, retry_async, retry_sync


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Flaky:
    """Fails with `errors` in turn, then returns "ok"."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


def test_pauses_double_up_to_the_cap() -> None:
    b = Backoff(0.1, 5.0)
    assert [b.pause(n) for n in range(1, 9)] == pytest.approx(
        [0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0]
    )
    assert Backoff(0.5, 10.0, factor=3).pause(3) == 4.5


def test_jitter_shortens_a_pause_by_up_to_its_share() -> None:
    b = Backoff(1.0, 8.0, jitter=0.5)
    assert b.pause(4, rand=lambda: 0.0) == 8.0
    assert b.pause(4, rand=lambda: 0.999999) == pytest.approx(4.0, abs=1e-4)
    assert b.pause(2, rand=lambda: 0.5) == 1.5


def test_invalid_policies_are_refused() -> None:
    bad: list[dict[str, float]] = [
        {"first_s": 0, "max_s": 1},
        {"first_s": 2, "max_s": 1},
        {"first_s": 1, "max_s": 2, "jitter": 1.5},
        {"first_s": 1, "max_s": 2, "factor": 0.5},
    ]
    for kw in bad:
        with pytest.raises(ValueError, match="invalid backoff"):
            Backoff(**kw)


def test_give_up_after_retries_or_time() -> None:
    assert not Backoff(1, 1).gives_up(1000, 1e9)  # no limits: never
    b = Backoff(1, 1, retries=2)
    assert [b.gives_up(n) for n in (1, 2, 3)] == [False, False, True]
    assert Backoff(1, 1, within_s=30).gives_up(1, 31) and not Backoff(1, 1, within_s=30).gives_up(
        9, 30
    )


def test_attempts_count_failures_in_a_row_and_start_again_after_a_success() -> None:
    a = Attempts(Backoff(0.5, 10.0))
    assert a.pause_s == 0.5
    assert [a.failed() for _ in range(3)] == [0.5, 1.0, 2.0]
    assert a.pause_s == 4.0
    a.succeeded()
    assert a.failed() == 0.5


def test_attempts_give_up_at_a_deadline_or_when_failing_too_long() -> None:
    clock = Clock()
    a = Attempts(SINK_RETRY, clock=clock)
    assert a.failed(deadline=clock.now + 1) == 0.1
    clock.now += 2
    assert a.failed(deadline=clock.now - 1) is None  # the deadline passed
    b = Attempts(Backoff(1, 1, within_s=10), clock=clock)
    assert b.failed() == 1
    clock.now += 10
    assert b.failed() == 1
    clock.now += 1
    assert b.failed() is None  # failing for 11 s since the first failure in a row


def test_the_project_rule_retries_transient_harclip_errors_only() -> None:
    assert retriable(SinkUnavailable("redis down"))
    assert not retriable(ConfigError("bad"))
    assert not retriable(RuntimeError("bug"))


def test_retry_sync_retries_transient_errors_with_backoff() -> None:
    slept: list[float] = []
    seen: list[tuple[str, float]] = []
    call = Flaky(SinkUnavailable("a"), SinkUnavailable("b"))
    got = retry_sync(call, Backoff(0.5, 10.0), sleep=slept.append,
                     on_retry=lambda e, p: seen.append((str(e), p)))  # fmt: skip
    assert got == "ok" and call.calls == 3
    assert slept == [0.5, 1.0] and seen == [("a", 0.5), ("b", 1.0)]


def test_retry_sync_raises_an_error_for_good_at_once() -> None:
    slept: list[float] = []
    call = Flaky(ConfigError("for good"))
    with pytest.raises(ConfigError):
        retry_sync(call, Backoff(0.5, 10.0), sleep=slept.append)
    assert call.calls == 1 and slept == []


def test_retry_sync_raises_the_last_error_when_the_policy_gives_up() -> None:
    slept: list[float] = []
    call = Flaky(*(SinkUnavailable(str(i)) for i in range(5)))
    with pytest.raises(SinkUnavailable, match="2"):
        retry_sync(call, Backoff(0.5, 10.0, retries=2), sleep=slept.append)
    assert call.calls == 3 and slept == [0.5, 1.0]


async def test_retry_async_uses_the_callers_rule_and_sleep() -> None:
    slept: list[float] = []

    async def sleep(s: float) -> None:
        slept.append(s)

    flaky = Flaky(KeyError("x"), KeyError("y"))

    async def call() -> str:
        return flaky()

    got = await retry_async(call, Backoff(0.2, 5.0, jitter=0.5), sleep=sleep, rand=lambda: 1.0,
                            retry_on=lambda e: isinstance(e, KeyError))  # fmt: skip
    assert got == "ok" and slept == pytest.approx([0.1, 0.2])
    flaky.errors += [SinkUnavailable("x"), RuntimeError("bug")]
    with pytest.raises(RuntimeError):  # the default rule: transient harclip errors only
        await retry_async(call, Backoff(0.2, 5.0), sleep=sleep)
    assert slept[-1] == 0.2 and flaky.calls == 5
