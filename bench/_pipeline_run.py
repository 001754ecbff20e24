"""The phases bench.pipeline (and bench.storage, bench.soak) runs against the local services: the
benchmarks' ViT-B/32 bundle, settings scoped to one phase, a worker in this process, the raw
engine, the throughput of N upload frames, the live latency, the cProfile breakdown run, and the
cleanup of what this run made."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console

from bench import harness
from bench._cpu import CpuMeter, ServicesMeter
from consumers.cli import run as run_worker
from consumers.scoring import engine_settings
from consumers.worker import Worker
from harclip.config import EngineChoice, Settings
from harclip.engines import create_engine
from harclip.io import indices, store
from harclip.io.es import make_es
from harclip.io.kafka import make_producer, send_frame
from harclip.io.topics import ensure_topics
from harclip.messages import Frame, new_frame_id, now_ms
from harclip.model.bundle import Bundle
from harclip.model.preprocess import preprocess_batch

console = Console(stderr=True)
RUN = uuid.uuid4().hex[:8]  # in every name this run makes: its cleanup deletes those only
PARTITIONS = 2


def ensure_bundle(path: Path, data: Path | None = None) -> Path:
    """The benchmarks' ViT-B/32-shaped bundle at `path`, made once (INT8 calibrated on the sample
    photos of `data`, default HARCLIP_SAMPLE_DATA)."""
    if (path / "manifest.json").is_file():
        return path
    model = path.with_name(path.name.replace("bundle", "model"))
    h = [sys.executable, "-m", "harclip"]
    if not (model / "config.json").is_file():
        subprocess.run([*h, "init-model", str(model), "--arch", "vit-b-32"], check=True)
    photos = (harness.sample_data(data) / "har-sample").resolve()
    subprocess.run([*h, "export", "--model", str(model), "--output", str(path), "--format",
                    "onnx", "int8", "--calibration", str(photos), "--validate"],
                   check=True)  # fmt: skip
    return path


def scoped(base: Settings, bundle: Path, engine: str = "auto", **batching: Any) -> Settings:
    """`base` with names of one phase of this run (bench-<RUN><n>), the bundle and `engine`."""
    sfx = f"{RUN}{uuid.uuid4().hex[:4]}"
    k, r, e = base.kafka, base.redis, base.elasticsearch
    return base.model_copy(update={
        "kafka": k.model_copy(update={"topics": k.topics.with_prefix(f"bench-{sfx}."),
                                      "group_id": f"bench-{sfx}"}),
        "redis": r.model_copy(update={"key_prefix": f"bench-{sfx}"}),
        "elasticsearch": e.model_copy(update={"predictions_index": f"bench-pred-{sfx}",
                                              "events_index": f"bench-events-{sfx}",
                                              "logs_index": f"bench-logs-{sfx}"}),
        "model": base.model.model_copy(update={"bundle": bundle, "engine": engine}),
        "batching": base.batching.model_copy(update=batching),
        "metrics": base.metrics.model_copy(update={"port": 0}),
    })  # fmt: skip


@contextlib.asynccontextmanager
async def worker(s: Settings, pipelined: bool = True) -> AsyncIterator[Worker]:
    stop, box, started = asyncio.Event(), [], asyncio.Event()

    def on_start(w: Worker) -> None:
        box.append(w)
        started.set()

    s = s.model_copy(update={
        "kafka": s.kafka.model_copy(update={"partitions": PARTITIONS}),
        "batching": s.batching.model_copy(update={"pipelined": pipelined}),
    })  # fmt: skip
    task = asyncio.create_task(run_worker(s, stop=stop, started=on_start))
    await asyncio.wait({task, asyncio.create_task(started.wait())},
                       return_when=asyncio.FIRST_COMPLETED)  # fmt: skip
    if task.done():
        task.result()
    await asyncio.wait_for(box[0].assigned.wait(), 60)
    try:
        yield box[0]
    finally:
        stop.set()
        await task


def raw_engine(
    bundle: Bundle, s: Settings, photos: list[bytes], batch: int, name: EngineChoice
) -> tuple[float, float, str, float]:
    """(img/s, ms per batch, engine label, CPU µs per image of the whole process) of the engine
    `name` alone at `batch`."""
    engine = create_engine(bundle, name, engine_settings(s.model))  # as the worker opens it
    size = bundle.manifest.image_size
    images, _ = preprocess_batch(photos[:batch], size, max_pixels=s.model.max_pixels)
    engine.embed(images)  # warm-up
    times = []
    cpu = time.process_time()
    for _ in range(8):
        t = time.perf_counter()
        engine.embed(images)
        times.append(time.perf_counter() - t)
    cpu_us = (time.process_time() - cpu) * 1e6 / (8 * batch)
    engine.close()
    ms = float(np.median(times)) * 1000
    return batch / (ms / 1000), ms, engine.label, cpu_us


async def throughput(
    s: Settings,
    photos: list[bytes],
    n: int,
    pipelined: bool,
    cpu: CpuMeter | None = None,
    services: ServicesMeter | None = None,
) -> tuple[float, int, str]:
    """(frames/s from the first send until every sink acknowledged all n, frames lost, the
    engine the Predictions name). The frames are sent from a thread of the bench's own
    (`bench-producer`), so the worker's threads are measured alone by `cpu` (if given);
    `services` meters the local services over the same window."""
    await ensure_topics(s.kafka, partitions=PARTITIONS)
    if cpu is not None:
        cpu.mark()
    async with worker(s, pipelined) as w:
        await todays_index(s, w.bundle)
        if cpu is not None:
            cpu.start()
        if services is not None:
            services.start()
        start = time.perf_counter()
        spent: list[float] = []  # the producer thread's CPU seconds

        def send() -> None:
            asyncio.run(send_uploads(s, photos, n))
            spent.append(time.thread_time())

        sender = threading.Thread(target=send, name="bench-producer")
        sender.start()
        await w.wait_for(lambda: w.metrics.total("harclip_frames_predicted") >= n, 600)
        elapsed = time.perf_counter() - start
        if cpu is not None:
            cpu.stop()
        if services is not None:
            services.stop()
        await asyncio.to_thread(sender.join)
        if cpu is not None:
            cpu.producer = spent[0] if spent else 0.0
        engine = w.heads.current.model.engine or "?"
    es = make_es(s.elasticsearch)
    await es.indices.refresh(index=s.elasticsearch.predictions_index)
    count = (await es.count(index=s.elasticsearch.predictions_index))["count"]
    await es.close()
    return n / elapsed, n - count, engine


async def todays_index(s: Settings, bundle: Bundle) -> None:
    """Create today's predictions index (from the template the worker put) before the timed
    window: the steady state of a deployment, where the first frame of the day made it. Its
    creation (~0.3-0.5 s of Elasticsearch CPU on this machine) would otherwise be charged to the
    few hundred frames of one run."""
    m = bundle.manifest
    space = indices.EmbeddingSpace(m.name, str(m.version), m.embed_dim)
    es = make_es(s.elasticsearch)
    try:
        await es.options(ignore_status=400).indices.create(
            index=indices.predictions_index(s.elasticsearch, space, now_ms()),
            wait_for_active_shards="1",
        )
    finally:
        await es.close()


async def send_uploads(s: Settings, photos: list[bytes], n: int, streams: str = "job") -> None:
    """n upload frames to the uploads topic, over four streams `<streams>-0..3`."""
    p = make_producer(s.kafka, role="bulk")
    await p.start()
    for i in range(n):
        at = now_ms()
        f = Frame(new_frame_id(at), f"{streams}-{i % 4}", i, at, photos[i % len(photos)])
        await send_frame(p, s.kafka.topics.uploads, f)
    await p.flush()
    await p.stop()


async def breakdown(s: Settings, photos: list[bytes], n: int, profile: Path) -> float:
    """`n` upload frames produced first, then the worker started under cProfile (its event-loop
    thread) until all are predicted: the profile goes to `profile`; returns frames/s."""
    import cProfile

    await ensure_topics(s.kafka, partitions=PARTITIONS)
    await send_uploads(s, photos, n)
    prof = cProfile.Profile()
    async with worker(s) as w:
        start = time.perf_counter()
        prof.enable()
        await w.wait_for(lambda: w.metrics.total("harclip_frames_predicted") >= n, 600)
        prof.disable()
        elapsed = time.perf_counter() - start
    prof.dump_stats(str(profile))
    return n / elapsed


async def latency(
    s: Settings, photos: list[bytes], rate: float, seconds: float
) -> tuple[list[float], int]:
    """Capture -> Redis latencies (ms) of live frames sent at `rate` frames/s; frames lost."""
    await ensure_topics(s.kafka, partitions=PARTITIONS)
    r = store.make_redis(s.redis)
    async with worker(s) as w:
        p = make_producer(s.kafka, role="live")
        await p.start()
        n = int(rate * seconds)
        seen: dict[str, float] = {}
        streams = [f"live-{i}" for i in range(2)]
        positions = await store.tail_positions(r, s.redis, streams)

        async def subscribe() -> None:
            after = dict(positions)
            while len(seen) < n:
                for entry, pred in await store.read_recent(
                    r, s.redis, streams, after, block_ms=500
                ):
                    seen.setdefault(pred.frame_id, now_ms() - pred.captured_at)
                    after[pred.stream_id] = entry

        sub = asyncio.create_task(subscribe())
        start = time.perf_counter()
        for i in range(n):
            await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))
            at = now_ms()
            f = Frame(new_frame_id(at), streams[i % 2], i, at, photos[i % len(photos)])
            await send_frame(p, s.kafka.topics.frames, f)
        await p.flush()
        await p.stop()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(sub, 120)
        dropped = w.metrics.total("harclip_frames_dropped")
    await r.aclose()
    return list(seen.values()), n - len(seen) - int(dropped)


async def cleanup(base: Settings) -> None:
    """Delete the topics, indices and Redis keys this run's phases made (their names hold RUN)."""
    await harness.cleanup(base, RUN)
