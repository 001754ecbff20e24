"""The concurrency limit refuses instead of queueing; waiters wake on the count they wait for."""

from __future__ import annotations

import asyncio

from api.metrics import _method_label
from api.overload import ConcurrencyLimit


async def test_concurrency_limit_refuses_past_the_limit() -> None:
    limit = ConcurrencyLimit(2)
    two = asyncio.ensure_future(limit.wait_until(lambda n: n == 2))
    assert limit.try_acquire() and limit.try_acquire()
    await two
    assert not limit.try_acquire() and limit.refused == 1 and limit.in_flight == 2
    idle = asyncio.ensure_future(limit.wait_until(lambda n: n == 0))
    limit.release()
    assert limit.try_acquire()
    limit.release()
    limit.release()
    await idle
    assert limit.in_flight == 0


def test_metrics_take_a_fixed_set_of_methods() -> None:
    assert [_method_label(m) for m in ("GET", "PUT", "OPTIONS", "FOO", "get", "X" * 100)] == [
        "GET", "PUT", "OPTIONS", "other", "other", "other",
    ]  # fmt: skip
