"""Faults under steady load (2 producers, 2 workers, the API with one subscriber per stream): the
Kafka broker restarted (SIGTERM, then SIGKILL), Elasticsearch stopped for 30 s, Redis restarted,
a worker SIGKILLed five times in a row, the API restarted under its subscribers. After each, every
frame sent has exactly one Elasticsearch document, Redis `latest` is each stream's last frame,
subscribers resumed without a gap, and the DLQ holds only the poison the load mixed in."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.support.chaos.rig import Rig
from tests.support.chaos.services import Row

pytestmark = pytest.mark.timeout(900)

ES_OUTAGE_S = 30.0


def assert_nothing_lost(row: Row) -> None:
    assert (row.lost, row.duplicated, row.latest_wrong, row.gaps) == (0, 0, 0, 0), row
    assert (row.dlq_not_poison, row.poison_missing) == (0, 0), row


async def hold(seconds: float) -> None:
    """Keep a fault in place for `seconds` while the load runs (the fault's length, not a wait
    for anything)."""
    await asyncio.sleep(seconds)


@pytest.mark.parametrize("how", ["SIGTERM", "SIGKILL"])
async def test_kafka_broker_restart(rig: Rig, how: str) -> None:
    t0 = time.monotonic()
    stop = rig.services.down if how == "SIGTERM" else rig.services.kill
    await asyncio.to_thread(stop, "kafka")
    await asyncio.to_thread(rig.services.up, "kafka")
    back = time.monotonic()
    row = Row(f"kafka broker restart ({how})", outage_s=back - t0)
    await rig.until_sent(40)  # the load goes on after the broker is back
    row.recovery_s = await rig.recovered(t0)
    assert_nothing_lost(await rig.check(row))


async def test_elasticsearch_stopped_for_30_s(rig: Rig) -> None:
    t0 = time.monotonic()
    await asyncio.to_thread(rig.services.down, "elasticsearch")
    await hold(ES_OUTAGE_S)
    await asyncio.to_thread(rig.services.up, "elasticsearch")
    back = time.monotonic()
    row = Row("elasticsearch stopped 30 s", outage_s=back - t0)
    row.recovery_s = await rig.recovered(t0)
    assert_nothing_lost(await rig.check(row))


async def test_redis_restart(rig: Rig) -> None:
    t0 = time.monotonic()
    await asyncio.to_thread(rig.services.down, "redis")
    await asyncio.to_thread(rig.services.up, "redis")
    row = Row("redis restart (empty: no persistence)", outage_s=time.monotonic() - t0)
    await rig.until_sent(40)
    row.recovery_s = await rig.recovered(t0)
    assert_nothing_lost(await rig.check(row))


async def test_a_worker_sigkilled_five_times_in_a_row(rig: Rig) -> None:
    t0 = time.monotonic()
    outage = 0.0
    for n in range(5):
        i = n % 2  # the two workers in turn
        k = time.monotonic()
        await rig.kill_worker(i)
        await rig.start_worker(i)  # returns once it is up again
        outage += time.monotonic() - k
        await rig.until_sent(20)  # and working under load before the next kill
    row = Row("worker SIGKILL x5", outage_s=outage)
    row.recovery_s = await rig.recovered(t0)
    assert_nothing_lost(await rig.check(row))


async def test_api_restart_under_subscribers(rig: Rig) -> None:
    assert rig.api is not None
    t0 = time.monotonic()
    await rig.api.astop()
    await rig.start_api()
    row = Row("API restart (subscribers on)", outage_s=time.monotonic() - t0)
    await rig.until_sent(40)
    row.recovery_s = await rig.recovered(t0)
    assert_nothing_lost(await rig.check(row))
