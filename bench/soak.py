"""Soak test on the real local services (`harclip services up`): memory, lag and latency over time.

    python -m bench.soak --minutes 30 [--bundle B] [--rate R] [--streams 4]

A worker (`python -m consumers`) and the API (`python -m api`) run as their own processes on
names of their own (topics, group, index, Redis keys: soak-<suffix>). First the worker's capacity
is measured (`--capacity-frames` uploads as fast as the producer sends them, until the worker has
acknowledged all in every sink); then live frames go to harclip.frames at half of it (or
`--rate`) over `--streams` streams for `--minutes`, while one WebSocket subscriber per stream
reads the predictions from the API (capture -> subscriber latency), and the API answers a
`latest` read every second and a predict every `--predict-every-s`.
Every `--sample-s` seconds: RSS of the worker and of the API (/proc), the worker's consumer lag.

Figures: `rss_growth` (worker, API) = median RSS of the last tenth of the run / median RSS of the
tenth after a warm-up tenth, minus 1 (goal < 0.10); lag (max, end; `lag_bounded` when it never
exceeds 10 s of frames); p99 latency of the first and of the last tenth; frames sent, predicted,
dropped (stale), failed, lost (sent - predicted - dropped). A table, two plots (time series of
RSS / lag / p99, histogram of first vs last tenth latencies; --plot-dir, default bench/results/)
and, as the last stdout line, one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from rich.console import Console
from rich.table import Table

from bench import harness
from bench._pipeline_run import ensure_bundle
from bench._plots import latency_histogram
from bench._soak_rig import (
    PARTITIONS,
    Running,
    capacity,
    cleanup,
    console,
    scoped,
    services,
    wait_predicted,
    worker_metrics,
)
from harclip.client import AsyncClient, NotFound
from harclip.config import Settings, load_settings
from harclip.io.es import make_es
from harclip.io.kafka import make_producer, send_frame
from harclip.io.topics import ensure_topics
from harclip.messages import Frame, new_frame_id, now_ms
from producers.upload import image_jpeg

ROOT = harness.ROOT


@dataclass
class Samples:
    """Time series of the soak (t in s since the soak's start)."""

    t: list[float] = field(default_factory=list)
    worker_rss: list[int] = field(default_factory=list)
    api_rss: list[int] = field(default_factory=list)
    lag: list[float] = field(default_factory=list)
    load: list[float] = field(default_factory=list)  # the machine's 1-minute load average
    latencies: list[tuple[float, float]] = field(default_factory=list)  # (t, ms)
    received: set[str] = field(default_factory=set)


async def sample_loop(worker: Running, api: Running, every_s: float, t0: float, out: Samples,
                      stop: asyncio.Event) -> None:  # fmt: skip
    async with httpx.AsyncClient(timeout=10) as http:
        while not stop.is_set():
            m = await worker_metrics(http, worker.port)
            out.t.append(time.monotonic() - t0)
            out.worker_rss.append(worker.rss_bytes())
            out.api_rss.append(api.rss_bytes())
            out.lag.append(m.get("harclip_consumer_lag", 0.0))
            out.load.append(os.getloadavg()[0])
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every_s)


async def subscriber(client: AsyncClient, stream: str, t0: float, out: Samples,
                     subscribed: asyncio.Event) -> None:  # fmt: skip
    sub = client.subscribe(stream, max_reconnects=1000)
    waiting = asyncio.ensure_future(sub.subscribed.wait())
    waiting.add_done_callback(lambda _: subscribed.set())
    try:
        async for m in sub:
            p = m.prediction
            if p.frame_id not in out.received:
                out.received.add(p.frame_id)
                out.latencies.append((time.monotonic() - t0, float(now_ms() - p.captured_at)))
    finally:
        waiting.cancel()
        await sub.close()


async def api_reads(client: AsyncClient, streams: list[str], photo: bytes, predict_every_s: float,
                    stop: asyncio.Event) -> int:  # fmt: skip
    """A `latest` read per second, a predict every `predict_every_s`; returns the errors."""
    errors, i = 0, 0
    next_predict = time.monotonic()
    while not stop.is_set():
        try:
            with contextlib.suppress(NotFound):  # no prediction of that stream yet
                await client.latest(streams[i % len(streams)])
            if predict_every_s > 0 and time.monotonic() >= next_predict:
                next_predict += predict_every_s
                await client.predict_bytes(photo, filename="photo.jpg")
        except Exception:  # counted: a soak reports, it does not stop
            errors += 1
        i += 1
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 1.0)
    return errors


async def live_load(s: Settings, photos: list[bytes], streams: list[str], rate: float,
                    seconds: float) -> int:  # fmt: skip
    """Live frames at `rate` frames/s over `streams` for `seconds`; returns how many were sent."""
    p = make_producer(s.kafka, role="live")
    await p.start()
    start, n, total = time.monotonic(), 0, int(rate * seconds)
    try:
        while n < total:
            await asyncio.sleep(max(0.0, start + n / rate - time.monotonic()))
            at = now_ms()
            sid = streams[n % len(streams)]
            f = Frame(new_frame_id(at), sid, n // len(streams), at, photos[n % len(photos)])
            await (await send_frame(p, s.kafka.topics.frames, f))  # acknowledged: it was sent
            n += 1
    finally:
        await p.stop()
    return n


def tenth(values: list[Any], times: list[float], duration: float, which: str) -> list[Any]:
    """The values of the tenth after a warm-up tenth ("start") or of the last tenth ("end")."""
    lo, hi = (0.1 * duration, 0.2 * duration) if which == "start" else (0.9 * duration, duration)
    return [v for v, t in zip(values, times, strict=True) if lo <= t <= hi + 1e-9]


def growth(rss: list[int], times: list[float], duration: float) -> tuple[float, float, float]:
    """(start MiB, end MiB, growth): medians of the start and end tenths."""
    a = float(np.median(tenth(rss, times, duration, "start") or rss[:1]))
    b = float(np.median(tenth(rss, times, duration, "end") or rss[-1:]))
    return a / 2**20, b / 2**20, (b / a - 1) if a else 0.0


@dataclass
class Soak:
    """What the soak measured, before the figures are computed."""

    capacity: float  # frames/s
    rate: float  # frames/s sent live
    sent: int
    metrics: dict[str, float]  # the worker's counters at the end
    samples: Samples
    read_errors: int
    docs: int  # Elasticsearch documents, capacity frames included
    streams: list[str]


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    base = load_settings()
    if args.bundle is None:  # the benchmarks' ViT-B/32 bundle
        args.bundle = ensure_bundle(ROOT / "state" / "bench-vitb32-bundle")
    s = scoped(base, args.bundle)
    paths = harness.sample_photos(args.data)[::3]
    photos = [image_jpeg(p, 224, base.model.max_pixels) for p in paths]
    await ensure_topics(s.kafka, partitions=PARTITIONS)
    try:
        async with services(s, args.bundle, args.log_dir) as (worker, api):
            run = await soak(s, args, photos, worker, api)
    finally:
        await cleanup(base, s)
    return figures(args, run)


async def soak(s: Settings, args: argparse.Namespace, photos: list[bytes], worker: Running,
               api: Running) -> Soak:  # fmt: skip
    """The capacity, then the live load with subscribers, samples and API reads."""
    streams = [f"soak-cam-{i}" for i in range(args.streams)]
    cap = await capacity(s, photos, args.capacity_frames, worker.port)
    rate = args.rate or cap / 2
    console.print(f"capacity {cap:.1f} frames/s; soak at {rate:.1f} frames/s for "
                  f"{args.minutes:g} min over {len(streams)} streams")  # fmt: skip
    out, stop = Samples(), asyncio.Event()
    async with AsyncClient(f"http://127.0.0.1:{api.port}") as client:
        t0 = time.monotonic()
        subscribed = [asyncio.Event() for _ in streams]
        subs = [asyncio.create_task(subscriber(client, sid, t0, out, ev))
                for sid, ev in zip(streams, subscribed, strict=True)]  # fmt: skip
        await asyncio.wait_for(asyncio.gather(*(e.wait() for e in subscribed)), 60)
        sampler = asyncio.create_task(sample_loop(worker, api, args.sample_s, t0, out, stop))
        reads = asyncio.create_task(api_reads(client, streams, photos[0],
                                              args.predict_every_s, stop))  # fmt: skip
        sent = await live_load(s, photos, streams, rate, args.minutes * 60)
        async with httpx.AsyncClient(timeout=10) as http:
            await wait_predicted(http, worker.port, args.capacity_frames + sent, 300)
            m = await worker_metrics(http, worker.port)
        stop.set()
        read_errors = await reads
        await sampler
        for t in subs:
            t.cancel()
        await asyncio.gather(*subs, return_exceptions=True)
    es = make_es(s.elasticsearch)
    await es.indices.refresh(index=s.elasticsearch.predictions_index)
    docs = (await es.count(index=s.elasticsearch.predictions_index))["count"]
    await es.close()
    return Soak(cap, rate, sent, m, out, read_errors, int(docs), streams)


def figures(args: argparse.Namespace, run: Soak) -> dict[str, Any]:
    """The JSON result (and the plots, unless --no-plot) of a soak."""
    seconds, out, m, rate, cap = args.minutes * 60, run.samples, run.metrics, run.rate, run.capacity
    predicted = m.get("harclip_frames_predicted_total", 0.0) - args.capacity_frames
    dropped = m.get("harclip_frames_dropped_total", 0.0)
    failed = m.get("harclip_frames_failed_total", 0.0)
    w0, w1, wg = growth(out.worker_rss, out.t, seconds)
    a0, a1, ag = growth(out.api_rss, out.t, seconds)
    lt = [t for t, _ in out.latencies]
    lat = [ms for _, ms in out.latencies]
    first = tenth(lat, lt, seconds, "start") or lat
    last = tenth(lat, lt, seconds, "end") or lat
    p99_start = float(np.percentile(first, 99)) if first else 0.0
    p99_end = float(np.percentile(last, 99)) if last else 0.0
    max_lag = max(out.lag) if out.lag else 0.0
    result: dict[str, Any] = {
        "minutes": args.minutes, "capacity_frames_s": round(cap, 1),
        "rate_frames_s": round(rate, 1),
        "streams": len(run.streams), "sent": run.sent, "predicted": int(predicted),
        "dropped": int(dropped), "failed": int(failed),
        "lost": int(run.sent - predicted - dropped - failed),
        "es_docs": run.docs - args.capacity_frames,
        "subscriber_received": len(out.received),
        "rss_worker_start_mib": round(w0, 1), "rss_worker_end_mib": round(w1, 1),
        "rss_api_start_mib": round(a0, 1), "rss_api_end_mib": round(a1, 1),
        "rss_growth": {"worker": round(wg, 4), "api": round(ag, 4)},
        "rss_growth_ok": wg < 0.10 and ag < 0.10,
        "lag_max": int(max_lag), "lag_end": int(out.lag[-1]) if out.lag else 0,
        "lag_bounded": max_lag <= 10 * rate,
        "p50_ms_start": round(float(np.percentile(first, 50)), 1) if first else 0.0,
        "p99_ms_start": round(p99_start, 1),
        "p50_ms_end": round(float(np.percentile(last, 50)), 1) if last else 0.0,
        "p99_ms_end": round(p99_end, 1),
        "p99_end_vs_start": round(p99_end / p99_start, 2) if p99_start else None,
        "api_read_errors": run.read_errors, "samples": len(out.t),
        "cpus": os.cpu_count(),
        "load_avg_mean": round(float(np.mean(out.load)), 2) if out.load else None,
        "load_avg_max": round(max(out.load), 2) if out.load else None,
    }  # fmt: skip
    if args.plot:
        title = (f"soak {args.minutes:g} min at {rate:.1f} frames/s (half of {cap:.1f}), "
                 f"{platform.node()}, {os.cpu_count()} CPUs")  # fmt: skip
        result["plot_series"] = str(plot_series(out, seconds, args.plot_dir / "soak.png", title))
        result["plot_latency"] = str(latency_histogram(
            {"first tenth": first, "last tenth": last}, args.plot_dir / "soak-latency.png",
            "capture → WebSocket subscriber latency, " + title,
        ))  # fmt: skip
    return result


def plot_series(out: Samples, seconds: float, path: Path, title: str) -> Path:
    """PNG: RSS of worker and API (MiB), consumer lag, p99 latency per minute, over time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    fig, (ax1, ax2, ax3) = plt.subplots(3, 1, figsize=(9, 8), sharex=True, layout="constrained")
    try:
        mins = np.asarray(out.t) / 60
        ax1.plot(mins, np.asarray(out.worker_rss) / 2**20, label="worker")
        ax1.plot(mins, np.asarray(out.api_rss) / 2**20, label="API")
        ax1.set_ylabel("RSS (MiB)")
        ax1.legend(fontsize=9)
        ax2.plot(mins, out.lag, color="C2")
        ax2.set_ylabel("consumer lag (records)")
        buckets: dict[int, list[float]] = {}
        for t, ms in out.latencies:
            buckets.setdefault(int(t // 60), []).append(ms)
        xs = sorted(buckets)
        ax3.plot([x + 0.5 for x in xs], [np.percentile(buckets[x], 99) for x in xs], "o-",
                 color="C3", label="p99")  # fmt: skip
        ax3.plot([x + 0.5 for x in xs], [np.percentile(buckets[x], 50) for x in xs], "o-",
                 color="C4", label="p50")  # fmt: skip
        ax3.set_ylabel("capture → subscriber (ms)")
        ax3.set_xlabel("minutes")
        ax3.legend(fontsize=9)
        for ax in (ax1, ax2, ax3):
            ax.grid(alpha=0.3)
            ax.axvspan(0.1 * seconds / 60, 0.2 * seconds / 60, color="0.9")
            ax.axvspan(0.9 * seconds / 60, seconds / 60, color="0.9")
        fig.suptitle(title, fontsize=10)
        fig.savefig(path, dpi=120)
    finally:
        plt.close(fig)
    return path


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument(
        "--bundle",
        type=Path,
        default=None,
        help="default: the benchmarks' ViT-B/32 bundle (state/bench-vitb32-bundle)",
    )
    ap.add_argument("--rate", type=float, default=None, help="frames/s; default: half capacity")
    ap.add_argument("--streams", type=int, default=4)
    ap.add_argument("--capacity-frames", type=int, default=320)
    ap.add_argument("--sample-s", type=float, default=5.0)
    ap.add_argument("--predict-every-s", type=float, default=5.0)
    ap.add_argument("--data", type=Path, help="sample data folder (default: HARCLIP_SAMPLE_DATA)")
    ap.add_argument("--log-dir", type=Path, default=ROOT / "state" / "logs")
    ap.add_argument("--plot", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--plot-dir", type=Path, default=ROOT / "bench" / "results")
    args = ap.parse_args(argv)
    import logging

    logging.basicConfig(level=logging.WARNING)
    result = asyncio.run(main_async(args))
    t = Table(title=f"soak: {args.minutes:g} min at half capacity")
    t.add_column("metric")
    t.add_column("value", justify="right")
    for k, v in result.items():
        t.add_row(k, str(v))
    Console().print(t)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
