"""Two worker processes in one group, one SIGKILLed mid-stream: after the rebalance every frame
has its Elasticsearch document, and none has two."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

from harclip.io.es import make_es
from harclip.io.kafka import send_frame
from harclip.messages import Frame, Prediction, new_frame_id, now_ms
from tests.integration.conftest import Unique, settings_env
from tests.integration.consumers.conftest import (
    PARTITIONS,
    producer,
    read_topic,
    worker_settings,
)

ROOT = Path(__file__).resolve().parents[3]
START_TIMEOUT_S = 90.0
TIMEOUT_S = 180.0
_DRAINS: set[asyncio.Task[None]] = set()


async def start_worker(env: dict[str, str], bundle: Path) -> asyncio.subprocess.Process:
    """A `python -m consumers` process; returns once it has logged that it has partitions."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "consumers", "--bundle", str(bundle), "--partitions",
        str(PARTITIONS), "--metrics-port", "0", "--max-batch", "4",
        cwd=ROOT, env={**os.environ, **env}, stderr=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.stderr is not None
    async with asyncio.timeout(START_TIMEOUT_S):
        while True:
            line = (await proc.stderr.readline()).decode()
            if not line:
                raise AssertionError(f"worker exited with {await proc.wait()} before starting")
            if "worker up" in line:
                break
    _DRAINS.add(asyncio.create_task(_drain(proc)))  # keep its stderr pipe from filling up
    return proc


async def _drain(proc: asyncio.subprocess.Process) -> None:
    assert proc.stderr is not None
    while await proc.stderr.readline():
        pass
    _DRAINS.discard(asyncio.current_task())  # type: ignore[arg-type]


async def test_a_killed_worker_loses_nothing_and_duplicates_nothing(
    unique: Unique, tiny_bundle: Path, sample_photos: list[Path]
) -> None:
    s = worker_settings(unique.settings, tiny_bundle)
    t = s.kafka.topics
    env = settings_env(s)
    photos = [p.read_bytes() for p in sample_photos[:240]]
    a = await start_worker(env, tiny_bundle)
    b = await start_worker(env, tiny_bundle)
    sent: set[str] = set()
    try:
        async with producer(s) as p:

            async def send(i: int) -> None:
                at = now_ms()
                f = Frame(new_frame_id(at), f"job-{i % 8}", i, at, photos[i])
                await send_frame(p, t.uploads, f)
                sent.add(f.frame_id)

            for i in range(120):
                await send(i)
            await p.flush()
            # both workers busy: predictions are flowing
            await read_topic(s, t.predictions, until=lambda rs: len(rs) >= 20)
            a.send_signal(signal.SIGKILL)
            await a.wait()
            for i in range(120, len(photos)):
                await send(i)
            await p.flush()

        def all_predicted(records: list) -> bool:  # type: ignore[type-arg]
            return {Prediction.from_json(r.value).frame_id for r in records} >= sent

        await read_topic(s, t.predictions, until=all_predicted, timeout_s=TIMEOUT_S)
        es = make_es(s.elasticsearch)
        try:
            index = s.elasticsearch.predictions_index
            await es.indices.refresh(index=index)
            count = (await es.count(index=index))["count"]
            hits = (await es.search(index=index, size=len(sent) + 50, source=False,
                                    query={"match_all": {}}))["hits"]["hits"]  # fmt: skip
        finally:
            await es.close()
        ids = [h["_id"] for h in hits]
        assert set(ids) == sent
        assert count == len(ids) == len(set(ids)) == len(sent)
        assert b.returncode is None  # the survivor is still running
    finally:
        for proc in (a, b):
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(b.wait(), 60)
    assert b.returncode == 0  # SIGTERM: clean shutdown
