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
             with auto, then with fp32 ONNX. Today's predictions index is made before the
             clock starts (a deployment's steady state). `--rounds` (3) rounds of raw auto
             engine + auto pipeline, back to back: `efficiency` is the median round's ratio
             (the raw engine alone moves ±15 % from one minute to the next on this VM)
  per-frame  the auto worker with max_batch 1, unpipelined (fetch only after the last commit)
  latency    live frames at half the auto pipeline's rate; a Redis subscriber measures
             capture -> Redis
Unless --no-plot, the latencies go to a histogram PNG (--plot-path, default
bench/results/pipeline-latency.png; its path is `latency_plot` in the JSON, null without a plot).
Where the CPU went: `cpu_us_per_frame` (the worker's threads by group), `machine_us_per_frame`
(the worker, the bench's producer thread, each local service by pid, and the cores' idle time),
`cpu_ceiling` (raw engine CPU ÷ the machine's CPU per frame: the `efficiency` this machine could
reach with no core idle) and `worker_share` (raw engine CPU ÷ the worker's: the `efficiency` of
a worker whose cores the services do not share).
The last stdout line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from bench import harness
from bench._cpu import CpuMeter, ServicesMeter, cpu_table, machine_us, settle
from bench._cpu import per_frame_us as cpu_us
from bench._pipeline_run import (
    RUN,
    breakdown,
    cleanup,
    console,
    ensure_bundle,
    latency,
    raw_engine,
    scoped,
    throughput,
)
from bench._plots import latency_histogram
from bench._stages import decode_us, per_frame_us
from harclip.config import Settings, load_settings
from harclip.model.bundle import Bundle
from producers.upload import image_jpeg

ROOT = harness.ROOT


async def engine_and_pipeline(
    base: Settings, bundle: Bundle, bundle_path: Path, photos: list[bytes],
    args: argparse.Namespace,
) -> list[dict[str, Any]]:  # fmt: skip
    """`--rounds` rounds of the raw auto engine, then the auto pipeline, back to back on a
    settled machine (what an earlier round left running, e.g. index merges, finished first)."""
    b = args.max_batch
    rounds: list[dict[str, Any]] = []
    for r in range(args.rounds):
        waited = settle()
        engine_ips, batch_ms, label, engine_cpu = raw_engine(bundle, base, photos, b, "auto")
        meter, svc = CpuMeter(), ServicesMeter(base)
        s = scoped(base, bundle_path, max_batch=b)
        pipe_fps, lost, engine = await throughput(s, photos, args.frames, True, meter, svc)
        rounds.append({
            "engine_img_s": round(engine_ips, 1), "batch_infer_ms": round(batch_ms, 1),
            "pipeline_frames_s": round(pipe_fps, 1), "lost": lost, "engine": engine,
            "efficiency": round(pipe_fps / engine_ips, 3),
            "cpu_us_per_frame": cpu_us(meter.seconds, args.frames)
            | {"raw engine": round(engine_cpu, 1)},
            "machine_us_per_frame": machine_us(meter, svc, args.frames),
        })  # fmt: skip
        await cleanup(base)  # its indices stop merging, its topics stop taking disk
        console.print(f"round {r + 1} (after {waited:.0f} s settling): engine {label} "
                      f"{engine_ips:.1f} img/s at batch {b}, "
                      f"pipeline ({engine}) {pipe_fps:.1f} frames/s, lost {lost}")  # fmt: skip
    return rounds


async def cpu_only(args: argparse.Namespace) -> dict[str, Any]:
    """`--cpu-only`: `--rounds` rounds of the raw auto engine and the auto pipeline, each with
    the worker's CPU µs per frame by thread group (the figure load moves least) and the
    machine's; the median of each group."""
    base = load_settings()
    bundle_path = ensure_bundle(args.bundle, args.data)
    bundle = Bundle.load(bundle_path)
    photos = [image_jpeg(p, 224, base.model.max_pixels) for p in harness.sample_photos(args.data)]
    rounds = await engine_and_pipeline(base, bundle, bundle_path, photos, args)
    med = {k: round(float(np.median([r["cpu_us_per_frame"][k] for r in rounds])), 1)
           for k in rounds[0]["cpu_us_per_frame"]}  # fmt: skip
    return {"engine": rounds[0]["engine"], "batch": args.max_batch, "frames": args.frames,
            "rounds": rounds, "cpu_us_per_frame": med,
            "cpu_ceiling": [round(r["cpu_us_per_frame"]["raw engine"]
                                  / r["machine_us_per_frame"]["machine"], 3) for r in rounds],
            "outside_engine_cpu_us": med["outside engine"]}  # fmt: skip


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    base = load_settings()
    bundle_path = ensure_bundle(args.bundle, args.data)
    bundle = Bundle.load(bundle_path)
    paths = harness.sample_photos(args.data)
    photos = [image_jpeg(p, 224, base.model.max_pixels) for p in paths]
    b = args.max_batch
    rounds = await engine_and_pipeline(base, bundle, bundle_path, photos, args)
    mid = sorted(rounds, key=lambda x: x["efficiency"])[len(rounds) // 2]  # the median round
    engine_ips, batch_ms, pipe_fps = (
        mid["engine_img_s"], mid["batch_infer_ms"], mid["pipeline_frames_s"])  # fmt: skip
    engine, cpu, machine = mid["engine"], mid["cpu_us_per_frame"], mid["machine_us_per_frame"]
    lost = sum(x["lost"] for x in rounds)
    console.print(f"worker CPU µs/frame: {cpu}; machine: {machine}")
    settle()
    fp32_ips, fp32_ms, _, _ = raw_engine(bundle, base, photos, b, "onnx")
    console.print(f"engine onnx: {fp32_ips:.1f} img/s at batch {b} ({fp32_ms:.0f} ms/batch)")
    fp32_fps, lost0, _ = await throughput(scoped(base, bundle_path, "onnx", max_batch=b), photos,
                                          args.frames, True)  # fmt: skip
    console.print(f"pipeline (onnx fp32): {fp32_fps:.1f} frames/s, lost {lost0}")
    await cleanup(base)
    settle()
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
    await cleanup(base)
    settle()
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
        "efficiency": mid["efficiency"], "efficiency_rounds": [x["efficiency"] for x in rounds],
        "batching_gain": round(pipe_fps / single_fps, 2),
        "half_load_rate": round(pipe_fps / 2, 1), "p50_ms_half_load": round(p50, 1),
        "p99_ms_half_load": round(p99, 1),
        "p99_target_ms": round(2 * batch_ms + 100, 1),
        "lost": lost + lost0 + lost1 + lost2, "frames": args.frames,
        "cpu_us_per_frame": cpu, "machine_us_per_frame": machine,
        "cpu_ceiling": round(cpu["raw engine"] / machine["machine"], 3),
        "worker_share": round(cpu["raw engine"] / cpu["total"], 3), "per_frame_us": stages,
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
    ap.add_argument("--rounds", type=int, default=3,
                    help="raw engine + auto pipeline rounds (efficiency: the median round's); "
                    "with --cpu-only: its pipeline runs")  # fmt: skip
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
