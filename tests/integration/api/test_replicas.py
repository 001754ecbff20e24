"""Two API processes publish different label sets at the same moment: both APIs and the worker
end on the same, newest head (the largest version), whichever record Kafka took first."""

from __future__ import annotations

import asyncio
import functools
import os
import socket
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from harclip.client import AsyncClient, ConnectionFailed
from harclip.wire import LabelSet, PredictionMessage
from tests.integration.api.conftest import ROOT, settings_env, wait_subscribed
from tests.integration.conftest import Unique

_DEADLINE_S = 120.0  # longest wait for a process to come up or a head to spread, seconds


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture
def two_apis(unique: Unique, tiny_bundle: Path) -> Iterator[list[str]]:
    """Two `python -m api` processes on the test's names; their base URLs."""
    env = {**os.environ, **settings_env(unique.settings)}
    urls, procs = [], []
    try:
        for _ in range(2):
            port = _free_port()
            cmd = [sys.executable, "-m", "api", "--bundle", str(tiny_bundle), "--port", str(port)]
            procs.append(subprocess.Popen([*cmd, "--host", "127.0.0.1"], cwd=ROOT, env=env))
            urls.append(f"http://127.0.0.1:{port}")
        yield urls
    finally:
        for proc in procs:
            _stop(proc)


async def _until(what: str, check: Callable[[], Awaitable[bool]]) -> None:
    """Return once `check()` holds, polling (bounded); fail naming `what` after the deadline."""
    deadline = asyncio.get_running_loop().time() + _DEADLINE_S
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)  # a condition poll


async def _answers(client: AsyncClient) -> bool:
    try:
        await client.info()
        return True
    except ConnectionFailed:
        return False


async def test_two_replicas_publishing_at_once_converge_on_the_newest_head(
    two_apis: list[str],
    worker: subprocess.Popen[bytes],
    sample_photos: list[Path],
) -> None:
    async with AsyncClient(two_apis[0]) as one, AsyncClient(two_apis[1]) as two:
        for c in (one, two):
            await _until(f"the API at {c.url}", functools.partial(_answers, c))
        a, b = await asyncio.gather(
            one.set_labels(["cycling", "running"]),
            two.set_labels(["sleeping", "eating", "drinking"]),
        )
        assert a.version != b.version
        newest: LabelSet = a if a.version > b.version else b

        async def on_newest(c: AsyncClient) -> bool:
            return await c.labels() == newest

        for c in (one, two):
            await _until(f"{c.url} on head v{newest.version}", functools.partial(on_newest, c))

        # The worker: its predictions name the head they used. Send frames one at a time until one
        # carries the newest head; a head only moves forward, so every later one must too.
        sub = one.subscribe("cam-replicas")
        received: asyncio.Queue[PredictionMessage] = asyncio.Queue()

        async def pump() -> None:
            async for m in sub:
                await received.put(m)

        pumping = asyncio.ensure_future(pump())
        await wait_subscribed(one, 1)
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
