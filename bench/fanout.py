"""Fan-out benchmark of the API's live WebSocket feed: N subscribers on all streams while
predictions are written to Redis at a fixed rate, as the worker writes them.

Serves a tiny CLIP bundle with `python -m api` in a child process (inference is not measured
here), on a Redis key prefix of its own. For each N (default 10, 100, 500) it opens N
`/ws/streams` subscribers spread over `--procs` client processes (one Python process cannot
read 10,000 messages/s and would be what the figures measure), writes `--rate` predictions/s
(over `--streams` streams) for `--seconds` seconds with `harclip.io.store.write_predictions`,
and measures, per message, the delay from the Redis write to the client's receipt (the writer
stamps its wall clock, ms, in `inferred_at`), the `dropped` reports the server sent (messages a
slow client lost), and the API process's CPU (% of one core) and RSS.
The last stdout line is one JSON object with `p50_ms_<N>`, `p99_ms_<N>`, `dropped_<N>`,
`cpu_pct_<N>`, `rss_mb_<N>` for each N; goal: 500 subscribers at 20 predictions/s with
p99 <= 250 ms and no drops. A histogram of the delays per N goes to --plot-path (default
bench/results/fanout-delay.png) unless --no-plot.

    python -m bench.fanout [--subscribers 10,100,500] [--rate 20] [--seconds 20] [--streams 4]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import psutil
from rich.console import Console
from rich.table import Table

from bench import harness
from bench._plots import latency_histogram
from harclip.config import load_settings
from harclip.services.child import Child

ROOT = harness.ROOT
console = Console(stderr=True)


def build_bundle(out: Path) -> Path:
    """A tiny random CLIP exported to ONNX (the feed does not touch the model)."""
    from harclip.clip.export import ExportOptions, export_bundle
    from harclip.clip.init import init_model
    from harclip.clip.load import load_clip

    if (out / "manifest.json").is_file():
        return out
    model_dir = init_model(out.parent / "tiny-model", "tiny")
    return export_bundle(load_clip(model_dir), out, ExportOptions(formats=("onnx",))).path


def start_api(bundle: Path, prefix: str, queue: int, compression: bool = False
              ) -> tuple[Child, str]:  # fmt: skip
    base = load_settings()
    settings = base.model_copy(update={
        "redis": base.redis.model_copy(update={"key_prefix": prefix}),
        "api": base.api.model_copy(update={"follow_control": False, "ws_queue_size": queue,
                                           "ws_compression": compression}),
        "log_level": "WARNING",
    })  # fmt: skip
    return harness.start_api(settings, bundle, ready="/health")


def _receiver(url: str, n: int, ready: Any, stop: Any, out: Any) -> None:
    """One client process with `n` subscribers: per message, the delay from the write (the
    writer's wall clock in `inferred_at`, ms) to its receipt; the drops the server reported.
    Puts (delays ms, received, dropped) on `out` once `stop` is set."""
    from websockets.asyncio.client import connect

    delays: list[float] = []
    counts = {"received": 0, "dropped": 0, "subscribed": 0}

    async def one() -> None:
        async with connect(url, max_size=2**24, open_timeout=120) as ws:
            async for raw in ws:
                now_ms = time.time() * 1000
                msg = orjson.loads(raw)
                kind = msg["type"]
                if kind == "prediction":
                    counts["received"] += 1
                    delays.append(now_ms - msg["prediction"]["inferred_at"])
                elif kind == "dropped":
                    counts["dropped"] += msg["count"]
                elif kind == "subscribed":
                    counts["subscribed"] += 1
                    if counts["subscribed"] == n:
                        ready.release()

    async def run() -> None:
        tasks = [asyncio.create_task(one()) for _ in range(n)]
        while not stop.is_set():
            await asyncio.sleep(0.1)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    asyncio.run(run())
    out.put((delays, counts["received"], counts["dropped"]))


def run_level(
    url: str, api: psutil.Process, prefix: str, n: int, rate: float, seconds: float, streams: int,
    procs: int,
) -> dict[str, Any]:  # fmt: skip
    """`n` subscribers over `procs` client processes (so that the clients are not what limits
    the measure), `rate` predictions/s written for `seconds`; the figures of this level."""
    import multiprocessing as mp

    # The streams exist before the subscribers come (cameras that already run): a stream that
    # appears later is found by the feed's next look (about a second), not measured here.
    asyncio.run(_write(api, prefix, n, float(streams), 1.0, streams))
    ctx = mp.get_context("spawn")
    ready, stop, out = ctx.Semaphore(0), ctx.Event(), ctx.Queue()
    ws_url = url.replace("http://", "ws://") + "/ws/streams"
    shares = [n // procs + (i < n % procs) for i in range(procs)]
    clients = [ctx.Process(target=_receiver, args=(ws_url, k, ready, stop, out)) for k in shares
               if k]  # fmt: skip
    for c in clients:
        c.start()
    try:
        for _ in clients:
            if not ready.acquire(timeout=300):
                raise SystemExit(f"{n} subscribers did not all subscribe within 300 s")
        console.print(f"  {n} subscribed ({len(clients)} client processes); writing "
                      f"{rate:g}/s for {seconds:g} s")  # fmt: skip
        rss, cpu = asyncio.run(_write(api, prefix, n, rate, seconds, streams))
        stop.set()
        results = [out.get(timeout=120) for _ in clients]
    finally:
        stop.set()
        for c in clients:
            c.join(30)
            if c.is_alive():
                c.kill()
    delays = np.asarray([d for r in results for d in r[0]] or [0.0])
    return {
        "p50_ms": float(np.percentile(delays, 50)),
        "p99_ms": float(np.percentile(delays, 99)),
        "max_ms": float(delays.max()),
        "expected": float(int(rate * seconds) * n),
        "received": float(sum(r[1] for r in results)),
        "dropped": float(sum(r[2] for r in results)),
        "cpu_pct": cpu,
        "cpu_us_per_msg": cpu / 100 * (seconds + 3) / max(1, sum(r[1] for r in results)) * 1e6,
        "rss_mb": max(rss),
        "delays": delays.tolist(),
    }


async def _write(
    api: psutil.Process, prefix: str, n: int, rate: float, seconds: float, streams: int
) -> tuple[list[float], float]:
    """Write the predictions at `rate`, each stamped with the wall clock of its write (ms, in
    `inferred_at`); the API's RSS samples (MB) and CPU (% of one core, writes + 3 s drain)."""
    from harclip.config import load_settings
    from harclip.io import store
    from harclip.messages import LabelScore, Latency, ModelRef, Prediction, new_frame_id

    rs = load_settings().redis.model_copy(update={"key_prefix": prefix})  # HARCLIP_REDIS__URL
    r = store.make_redis(rs)
    model = ModelRef(name="bench", version="1", head_version=1)
    top_k = [LabelScore(label="running", score=0.9), LabelScore(label="eating", score=0.1)]
    api.cpu_percent(None)
    t0 = time.perf_counter()
    total = int(rate * seconds)
    first = int(time.time() * 1000)  # seqs grow across calls for the same stream
    rss = [api.memory_info().rss / 2**20]
    try:
        for seq in range(1, total + 1):
            await asyncio.sleep(max(0.0, t0 + seq / rate - time.perf_counter()))
            at_ms = int(time.time() * 1000)
            p = Prediction(
                frame_id=new_frame_id(at_ms), stream_id=f"cam-{n}-{seq % streams}", seq=first + seq,
                captured_at=at_ms, inferred_at=at_ms, label="running", score=0.9, top_k=top_k,
                model=model, latency_ms=Latency(queue=1.0, infer=5.0, total=20.0),
            )  # fmt: skip
            await store.write_predictions(r, rs, [p])
            if seq % max(1, int(rate)) == 0:
                rss.append(api.memory_info().rss / 2**20)
        if total > streams:
            await asyncio.sleep(3)  # the last messages' way through
        return rss, float(api.cpu_percent(None))
    finally:
        await r.aclose()


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--subscribers", default="10,100,500", help="comma-separated N values")
    ap.add_argument("--rate", type=float, default=20.0, help="predictions written per second")
    ap.add_argument("--seconds", type=float, default=20.0, help="writing time per level")
    ap.add_argument("--streams", type=int, default=4, help="streams the predictions spread over")
    ap.add_argument("--queue", type=int, default=256, help="HARCLIP_API__WS_QUEUE_SIZE")
    ap.add_argument("--procs", type=int, default=4, help="client processes for the subscribers")
    ap.add_argument("--compression", action="store_true", help="permessage-deflate on")
    ap.add_argument("--no-plot", action="store_true")
    ap.add_argument("--plot-path", type=Path, default=ROOT / "bench/results/fanout-delay.png")
    args = ap.parse_args(argv)
    levels = [int(x) for x in args.subscribers.split(",") if x.strip()]

    work = Path(tempfile.mkdtemp(prefix="harclip-fanout-"))
    console.print("building a tiny bundle ...")
    bundle = build_bundle(work / "bundle")
    prefix = f"harclip-fanout-{uuid.uuid4().hex[:8]}"
    proc, url = start_api(bundle, prefix, args.queue, args.compression)
    results: dict[int, dict[str, Any]] = {}
    try:
        api = psutil.Process(proc.pid)
        for n in levels:
            console.print(f"[bold]N = {n}[/bold]")
            results[n] = run_level(url, api, prefix, n, args.rate, args.seconds,
                                   args.streams, args.procs)  # fmt: skip
    finally:
        proc.stop()
        _cleanup(prefix)

    table = Table(title=f"WebSocket fan-out, {args.rate:g} predictions/s over {args.streams} "
                        f"streams, {args.seconds:g} s per level ({platform.node()}, "
                        f"{os.cpu_count()} CPUs)")  # fmt: skip
    for col in ("subscribers", "messages", "received", "dropped", "p50 ms", "p99 ms", "max ms",
                "API CPU %", "API CPU µs/msg", "API RSS MB"):  # fmt: skip
        table.add_column(col, justify="right")
    for n, m in results.items():
        cells = [f"{m[k]:.0f}" for k in ("expected", "received", "dropped")]
        cells += [f"{m[k]:.1f}" for k in ("p50_ms", "p99_ms", "max_ms")]
        cells += [f"{m[k]:.0f}" for k in ("cpu_pct", "cpu_us_per_msg", "rss_mb")]
        table.add_row(str(n), *cells)
    Console().print(table)
    plot = None
    if not args.no_plot:
        plot = latency_histogram(
            {f"N={n}": m["delays"] for n, m in results.items()},  # type: ignore[misc]
            args.plot_path, "Redis write -> WebSocket receipt", unit="messages",
        )  # fmt: skip
    out: dict[str, object] = {"rate": args.rate, "seconds": args.seconds, "streams": args.streams,
                              "compression": args.compression}  # fmt: skip
    for n, m in results.items():
        for key in ("p50_ms", "p99_ms", "dropped", "cpu_pct", "cpu_us_per_msg", "rss_mb"):
            out[f"{key}_{n}"] = round(m[key], 2)
        out[f"received_{n}"] = int(m["received"])
        out[f"expected_{n}"] = int(m["expected"])
    out["delay_plot"] = None if plot is None else str(plot)
    print(json.dumps(out))
    return 0


def _cleanup(prefix: str) -> None:
    import redis

    from harclip.config import load_settings

    r = redis.Redis.from_url(load_settings().redis.url)
    keys = list(r.scan_iter(f"{prefix}*", count=1000))
    if keys:
        r.delete(*keys)
    r.close()


if __name__ == "__main__":
    raise SystemExit(main())
