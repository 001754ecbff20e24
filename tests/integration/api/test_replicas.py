"""Two API processes publish different label sets at the same moment: both APIs and the worker
end on the same, newest head (the largest version), whichever record Kafka took first."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from harclip.client import AsyncClient
from harclip.services.child import Child
from harclip.wire import LabelSet, PredictionMessage
from tests.support.api import ADMIN_KEY, child_settings, wait_subscribed
from tests.support.processes import env_of, free_port, start
from tests.support.scoped import Unique

_DEADLINE_S = 120.0  # longest wait for a process to come up or a head to spread, seconds


@pytest.fixture
def two_apis(unique: Unique, tiny_bundle: Path) -> Iterator[list[tuple[str, Child]]]:
    """Two `python -m api` processes on the test's names: their base URLs and logs."""
    env = env_of(child_settings(unique.settings))
    apis: list[tuple[str, Child]] = []
    try:
        for _ in range(2):
            port = free_port()
            args = ["--bundle", str(tiny_bundle), "--port", str(port), "--host", "127.0.0.1"]
            watch = start("api", *args, env=env)
            apis.append((f"http://127.0.0.1:{port}", watch))
        yield apis
    finally:
        for _, watch in apis:
            watch.stop()


async def test_two_replicas_publishing_at_once_converge_on_the_newest_head(
    two_apis: list[tuple[str, Child]],
    worker: Child,
    sample_photos: list[Path],
) -> None:
    (url_one, log_one), (url_two, log_two) = two_apis
    async with AsyncClient(url_one, ADMIN_KEY) as one, AsyncClient(url_two, ADMIN_KEY) as two:
        for log in (log_one, log_two):
            await log.await_line("Uvicorn running on", _DEADLINE_S)  # bound: startup comes first
        a, b = await asyncio.gather(
            one.set_labels(["cycling", "running"]),
            two.set_labels(["sleeping", "eating", "drinking"]),
        )
        # each answer is the head in use once its own was applied: the other replica's newer
        # head may already have arrived, and then both answer with that one
        newest: LabelSet = a if a.version >= b.version else b

        for log in (log_one, log_two):  # each API logs the head it switches to
            await log.await_line(rf"head version {newest.version} in use", _DEADLINE_S)
        assert await one.labels() == newest and await two.labels() == newest

        # The worker: its predictions name the head they used. Send frames one at a time until one
        # carries the newest head; a head only moves forward, so every later one must too.
        sub = one.subscribe("cam-replicas")
        received: asyncio.Queue[PredictionMessage] = asyncio.Queue()

        async def pump() -> None:
            async for m in sub:
                await received.put(m)

        pumping = asyncio.ensure_future(pump())
        await wait_subscribed(sub)
        photo = sample_photos[0].read_bytes()
        versions: list[int] = []
        while not versions or versions[-1] != newest.version:
            assert len(versions) < 100, versions
            await one.ingest("cam-replicas", [photo])
            m = await asyncio.wait_for(received.get(), _DEADLINE_S)
            versions.append(m.prediction.model.head_version)
        await two.ingest("cam-replicas", [photo])
        last = (await asyncio.wait_for(received.get(), _DEADLINE_S)).prediction
        assert last.model.head_version == newest.version and last.label in newest.labels
        await sub.close()
        await pumping
        assert (await one.labels()).version == (await two.labels()).version == newest.version
