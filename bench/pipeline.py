"""Streaming-path benchmark on the real local services (`harclip services up`).

    python -m bench.pipeline [--frames 320] [--max-batch 16] [--latency-seconds 10]

ViT-B/32-shaped random CLIP (made once into state/bench-vitb32-bundle with ONNX fp32 and INT8
calibrated on the sample photos, validated), the real sample photos as producers send them
(short side 224, JPEG). The worker runs the default engine, `auto` (the engine it chose is `engine`
in the JSON), and once more with fp32 ONNX for the same frames (`auto_vs_fp32`). Phases, each
with its own topics, group, index and Redis keys:
  engine     raw `embed` img/s at the worker's batch size, on pre-decoded images (auto and fp32)
  pipeline   N upload frames -> worker -> Kafka/Redis/Elasticsearch: frames/s until every
             Prediction is acknowledged by all sinks (then counted in Elasticsearch: `lost`),
             with auto, then with fp32 ONNX
  per-frame  the auto worker with max_batch 1, unpipelined (fetch only after the last commit)
  latency    live frames at half the auto pipeline's rate; a Redis subscriber measures
             capture -> Redis
Unless --no-plot, the latencies go to a histogram PNG (--plot-path, default
bench/results/pipeline-latency.png; its path is `latency_plot` in the JSON, null without a plot).
The last stdout line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from bench import harness
from bench._cpu import CpuMeter, cpu_table
from bench._cpu import per_frame_us as cpu_us
from bench._plots import latency_histogram
from bench._stages import decode_us, per_frame_us
from consumers.cli import run as run_worker
from consumers.scoring import engine_settings
from consumers.worker import Worker
from harclip.config import EngineChoice, Settings, load_settings
from harclip.engines import create_engine
from harclip.io import store
from harclip.io.es import make_es
from harclip.io.kafka import make_producer, send_frame
from harclip.io.topics import ensure_topics
from harclip.messages import Frame, new_frame_id, now_ms
from harclip.model.bundle import Bundle
from harclip.model.preprocess import preprocess_batch
from producers.upload import image_jpeg

ROOT = harness.ROOT
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
    s: Settings, photos: list[bytes], n: int, pipelined: bool, cpu: CpuMeter | None = None
) -> tuple[float, int, str]:
    """(frames/s from the first send until every sink acknowledged all n, frames lost, the
    engine the Predictions name). The frames are sent from a thread of the bench's own
    (`bench-producer`), so the worker's threads are measured alone by `cpu` (if given)."""
    await ensure_topics(s.kafka, partitions=PARTITIONS)
    if cpu is not None:
        cpu.mark()
    async with worker(s, pipelined) as w:
        if cpu is not None:
            cpu.start()
        start = time.perf_counter()
        sender = threading.Thread(
            target=asyncio.run, args=(_send(s, photos, n),), name="bench-producer"
        )
        sender.start()
        await w.wait_for(lambda: w.metrics.total("harclip_frames_predicted") >= n, 600)
        elapsed = time.perf_counter() - start
        if cpu is not None:
            cpu.stop()
        await asyncio.to_thread(sender.join)
        engine = w.heads.current.model.engine or "?"
    es = make_es(s.elasticsearch)
    await es.indices.refresh(index=s.elasticsearch.predictions_index)
    count = (await es.count(index=s.elasticsearch.predictions_index))["count"]
    await es.close()
    return n / elapsed, n - count, engine


async def _send(s: Settings, photos: list[bytes], n: int) -> None:
    """n upload frames to the uploads topic."""
    p = make_producer(s.kafka, role="bulk")
    await p.start()
    for i in range(n):
        at = now_ms()
        f = Frame(new_frame_id(at), f"job-{i % 4}", i, at, photos[i % len(photos)])
        await send_frame(p, s.kafka.topics.uploads, f)
    await p.flush()
    await p.stop()


async def breakdown(s: Settings, photos: list[bytes], n: int, profile: Path) -> float:
    """`n` upload frames produced first, then the worker started under cProfile (its event-loop
    thread) until all are predicted: the profile goes to `profile`; returns frames/s."""
    import cProfile

    await ensure_topics(s.kafka, partitions=PARTITIONS)
    await _send(s, photos, n)
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
    return list(seen.values()), n - len(seen) - dropped


async def cleanup(base: Settings) -> None:
    """Delete the topics, indices and Redis keys this run's phases made (their names hold RUN)."""
    await harness.cleanup(base, RUN)


async def cpu_only(args: argparse.Namespace) -> dict[str, Any]:
    """`--cpu-only`: the raw auto engine, then `--rounds` auto pipeline runs, each with the
    worker's CPU µs per frame by thread group (the figure load moves least)."""
    base = load_settings()
    bundle_path = ensure_bundle(args.bundle, args.data)
    bundle = Bundle.load(bundle_path)
    photos = [image_jpeg(p, 224, base.model.max_pixels) for p in harness.sample_photos(args.data)]
    b = args.max_batch
    engine_ips, _, label, engine_cpu = raw_engine(bundle, base, photos, b, "auto")
    rounds = []
    for _ in range(args.rounds):
        meter = CpuMeter()
        fps, lost, engine = await throughput(scoped(base, bundle_path, max_batch=b), photos,
                                             args.frames, True, meter)  # fmt: skip
        rounds.append({"frames_s": round(fps, 1), "lost": lost,
                       "cpu_us_per_frame": cpu_us(meter.seconds, args.frames)})  # fmt: skip
        console.print(f"pipeline ({engine}): {fps:.1f} frames/s, CPU µs/frame {rounds[-1]}")
        console.print(sorted(meter.threads, key=lambda t: -t[2])[:12])
    await cleanup(base)
    med = {k: round(float(np.median([r["cpu_us_per_frame"][k] for r in rounds])), 1)
           for k in rounds[0]["cpu_us_per_frame"]}  # fmt: skip
    return {"engine": label, "engine_img_s": round(engine_ips, 1), "batch": b,
            "frames": args.frames, "rounds": rounds,
            "cpu_us_per_frame": med | {"raw engine": round(engine_cpu, 1)},
            "outside_engine_cpu_us": med["outside engine"]}  # fmt: skip


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    base = load_settings()
    bundle_path = ensure_bundle(args.bundle, args.data)
    bundle = Bundle.load(bundle_path)
    paths = harness.sample_photos(args.data)
    photos = [image_jpeg(p, 224, base.model.max_pixels) for p in paths]
    b = args.max_batch
    engine_ips, batch_ms, label, engine_cpu = raw_engine(bundle, base, photos, b, "auto")
    console.print(f"engine {label}: {engine_ips:.1f} img/s at batch {b} ({batch_ms:.0f} ms/batch)")
    fp32_ips, fp32_ms, _, _ = raw_engine(bundle, base, photos, b, "onnx")
    console.print(f"engine onnx: {fp32_ips:.1f} img/s at batch {b} ({fp32_ms:.0f} ms/batch)")
    meter = CpuMeter()
    pipe_fps, lost, engine = await throughput(scoped(base, bundle_path, max_batch=b), photos,
                                              args.frames, True, meter)  # fmt: skip
    cpu = cpu_us(meter.seconds, args.frames) | {"raw engine": round(engine_cpu, 1)}
    console.print(f"worker CPU µs/frame: {cpu}")
    console.print(f"pipeline ({engine}): {pipe_fps:.1f} frames/s, lost {lost}")
    fp32_fps, lost0, _ = await throughput(scoped(base, bundle_path, "onnx", max_batch=b), photos,
                                          args.frames, True)  # fmt: skip
    console.print(f"pipeline (onnx fp32): {fp32_fps:.1f} frames/s, lost {lost0}")
    single_fps, lost1, _ = await throughput(scoped(base, bundle_path, max_batch=1), photos,
                                            max(32, args.frames // 4), False)  # fmt: skip
    console.print(f"per-frame unpipelined: {single_fps:.1f} frames/s")
    stages: dict[str, float] = {}
    if args.breakdown:
        prof_path = Path(f"/tmp/harclip-bench-pipeline-{RUN}.prof")
        bd_fps = await breakdown(scoped(base, bundle_path, max_batch=b), photos, args.frames,
                                 prof_path)  # fmt: skip
        size, mp = bundle.manifest.image_size, base.model.max_pixels
        stages = {"engine (own thread; raw engine at this batch)": round(1e6 / engine_ips, 1),
                  "decode + resize (decode threads; one thread)": round(
                      decode_us(photos[:64], size, mp), 1)}  # fmt: skip
        stages |= {f"loop: {k}": v for k, v in per_frame_us(prof_path, args.frames).items()}
        console.print(f"breakdown run ({engine}, under cProfile): {bd_fps:.1f} frames/s")
    lat, lost2 = await latency(scoped(base, bundle_path, max_batch=b, max_age_ms=30_000),
                               photos, pipe_fps / 2, args.latency_seconds)  # fmt: skip
    p50, p99 = (float(np.percentile(lat, q)) for q in (50, 99)) if lat else (0.0, 0.0)
    await cleanup(base)
    plot = plot_latency(lat, args.plot_path, pipe_fps / 2, b, engine) if args.plot else None
    return {
        "engine": engine, "engine_img_s": round(engine_ips, 1), "batch": b,
        "batch_infer_ms": round(batch_ms, 1), "fp32_engine_img_s": round(fp32_ips, 1),
        "pipeline_frames_s": round(pipe_fps, 1), "pipeline_fp32_frames_s": round(fp32_fps, 1),
        "auto_vs_fp32": round(pipe_fps / fp32_fps, 2),
        "engine_auto_vs_fp32": round(engine_ips / fp32_ips, 2),
        "per_frame_frames_s": round(single_fps, 1),
        "efficiency": round(pipe_fps / engine_ips, 3),
        "batching_gain": round(pipe_fps / single_fps, 2),
        "half_load_rate": round(pipe_fps / 2, 1), "p50_ms_half_load": round(p50, 1),
        "p99_ms_half_load": round(p99, 1),
        "p99_target_ms": round(2 * batch_ms + 100, 1),
        "lost": lost + lost0 + lost1 + lost2, "frames": args.frames,
        "cpu_us_per_frame": cpu, "per_frame_us": stages,
        "pipeline_us_per_frame": round(1e6 / pipe_fps, 1),
        "latency_plot": str(plot) if plot else None,
    }  # fmt: skip


def plot_latency(lat_ms: list[float], path: Path, rate: float, batch: int, engine: str) -> Path:
    """Histogram PNG of the half-load capture -> Redis latencies (ms) at `rate` frames/s."""
    title = (f"capture → Redis latency, live frames at {rate:.1f} frames/s (half load), "
             f"max batch {batch}\n{platform.node()}, {os.cpu_count()} CPUs, "
             f"ViT-B/32 random, {engine}")  # fmt: skip
    return latency_histogram({"half load": lat_ms}, path, title)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=320)
    ap.add_argument("--max-batch", type=int, default=16)
    ap.add_argument("--latency-seconds", type=float, default=10.0)
    ap.add_argument("--bundle", type=Path, default=ROOT / "state" / "bench-vitb32-bundle")
    ap.add_argument("--data", type=Path, help="sample data folder (default: HARCLIP_SAMPLE_DATA)")
    ap.add_argument("--breakdown", action=argparse.BooleanOptionalAction, default=True,
                    help="one more auto run with the worker's event loop under cProfile: "
                    "µs per frame by stage (per_frame_us)")  # fmt: skip
    ap.add_argument("--plot", action=argparse.BooleanOptionalAction, default=True,
                    help="write the latency histogram PNG (default: on)")  # fmt: skip
    ap.add_argument("--plot-path", type=Path,
                    default=ROOT / "bench" / "results" / "pipeline-latency.png")  # fmt: skip
    ap.add_argument("--cpu-only", action="store_true",
                    help="only the raw auto engine and --rounds auto pipeline runs, with the "
                    "worker's CPU µs per frame by thread group")  # fmt: skip
    ap.add_argument("--rounds", type=int, default=3, help="pipeline runs of --cpu-only")
    args = ap.parse_args(argv)
    import logging

    logging.basicConfig(level=logging.WARNING)
    if args.cpu_only:
        result = asyncio.run(cpu_only(args))
        cpu_table(result["cpu_us_per_frame"])
        print(json.dumps(result))
        return 0
    result = asyncio.run(main_async(args))
    t = Table(title=f"streaming pipeline (ViT-B/32 random, engine auto: {result['engine']})")
    t.add_column("metric")
    t.add_column("value", justify="right")
    for k, v in result.items():
        if k not in ("per_frame_us", "cpu_us_per_frame"):
            t.add_row(k, str(v))
    Console().print(t)
    cpu_table(result["cpu_us_per_frame"])
    if result["per_frame_us"]:
        bd = Table(title=f"µs per frame by stage (pipeline: {result['pipeline_us_per_frame']} µs "
                         "per frame; loop rows from cProfile, which slows them)")  # fmt: skip
        bd.add_column("stage")
        bd.add_column("µs / frame", justify="right")
        for k, v in result["per_frame_us"].items():
            bd.add_row(k, f"{v:,.1f}")
        Console().print(bd)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
