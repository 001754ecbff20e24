"""Fan-out benchmark of the API's live WebSocket feed: N subscribers on all streams while
predictions are written to Redis at a fixed rate, as the worker writes them.

Serves a tiny CLIP bundle with `python -m api` in a child process (inference is not measured
here), on a Redis key prefix of its own. For each N (default 10, 100, 500) it opens N
`/ws/streams` subscribers in this process, writes `--rate` predictions/s (over `--streams`
streams) for `--seconds` seconds with `harclip.io.store.write_predictions`, and measures, per
message, the delay from the Redis write to the client's receipt (the writer stamps its wall clock
in `inferred_at`, in µs-exact float seconds kept aside by frame id), the `dropped` reports the
server sent (messages a slow client lost), and the API process's CPU (% of one core) and RSS.
The last stdout line is one JSON object with `p50_ms_<N>`, `p99_ms_<N>`, `dropped_<N>`,
`cpu_pct_<N>`, `rss_mb_<N>` for each N; goal: 500 subscribers at 20 predictions/s with
p99 <= 250 ms and no drops. A histogram of the delays per N goes to --plot-path (default
bench/results/fanout-delay.png) unless --no-plot.

    python bench/fanout.py [--subscribers 10,100,500] [--rate 20] [--seconds 20] [--streams 4]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

import httpx
import numpy as np
import orjson
import psutil
from _plots import latency_histogram  # bench/ itself is sys.path[0] when this runs as a script
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
console = Console(stderr=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def build_bundle(out: Path) -> Path:
    """A tiny random CLIP exported to ONNX (the feed does not touch the model)."""
    from harclip.clip.export import ExportOptions, export_bundle
    from harclip.clip.init import init_model
    from harclip.clip.load import load_clip

    if (out / "manifest.json").is_file():
        return out
    model_dir = init_model(out.parent / "tiny-model", "tiny")
    return export_bundle(load_clip(model_dir), out, ExportOptions(formats=("onnx",))).path


def start_api(bundle: Path, prefix: str, queue: int) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    env = {
        **os.environ,
        "HARCLIP_REDIS__KEY_PREFIX": prefix,
        "HARCLIP_API__FOLLOW_CONTROL": "false",
        "HARCLIP_API__WS_QUEUE_SIZE": str(queue),
        "HARCLIP_LOG_LEVEL": "WARNING",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "api", "--bundle", str(bundle), "--port", str(port)],
        cwd=ROOT, env=env,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"api exited with {proc.returncode}")
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return proc, url
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise SystemExit("api did not start within 120 s")


class Receivers:
    """N subscribers: the receipt time of each message (by frame id) and the drops reported."""

    def __init__(self) -> None:
        self.delays_ms: list[float] = []
        self.dropped = 0
        self.received = 0
        self.sent_at: dict[str, float] = {}  # frame id -> time.perf_counter() of the write
        self.subscribed = 0

    async def subscriber(self, url: str, ready: asyncio.Event, n: int) -> None:
        from websockets.asyncio.client import connect

        async with connect(url, max_size=2**24, open_timeout=60) as ws:
            async for raw in ws:
                now = time.perf_counter()
                msg = orjson.loads(raw)
                kind = msg["type"]
                if kind == "prediction":
                    self.received += 1
                    at = self.sent_at.get(msg["prediction"]["frame_id"])
                    if at is not None:
                        self.delays_ms.append((now - at) * 1000)
                elif kind == "dropped":
                    self.dropped += msg["count"]
                elif kind == "subscribed":
                    self.subscribed += 1
                    if self.subscribed == n:
                        ready.set()


async def run_level(
    url: str, api: psutil.Process, prefix: str, n: int, rate: float, seconds: float, streams: int
) -> dict[str, float]:
    from harclip.config import RedisSettings
    from harclip.io import store
    from harclip.messages import LabelScore, Latency, ModelRef, Prediction, new_frame_id

    rs = RedisSettings(key_prefix=prefix)
    r = store.make_redis(rs)
    model = ModelRef(name="bench", version="1", head_version=1)
    top_k = [LabelScore(label="running", score=0.9), LabelScore(label="eating", score=0.1)]

    def prediction(sid: str, seq: int) -> Prediction:
        at_ms = int(time.time() * 1000)
        return Prediction(
            frame_id=new_frame_id(at_ms), stream_id=sid, seq=seq, captured_at=at_ms,
            inferred_at=at_ms, label="running", score=0.9, top_k=top_k, model=model,
            latency_ms=Latency(queue=1.0, infer=5.0, total=20.0),
        )  # fmt: skip

    # The streams exist before the subscribers come (cameras that already run): a stream that
    # appears later is found by the feed's next look (about a second), not measured here.
    await store.write_predictions(r, rs, [prediction(f"cam-{n}-{i}", 0) for i in range(streams)])
    rx = Receivers()
    ready = asyncio.Event()
    ws_url = url.replace("http://", "ws://") + "/ws/streams"
    tasks = [asyncio.create_task(rx.subscriber(ws_url, ready, n)) for _ in range(n)]
    await asyncio.wait_for(ready.wait(), 300)
    console.print(f"  {n} subscribed; writing {rate:g}/s for {seconds:g} s")
    api.cpu_percent(None)
    t0 = time.perf_counter()
    seq = 0
    rss: list[float] = []
    total = int(rate * seconds)
    try:
        while seq < total:
            due = t0 + seq / rate
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            p = prediction(f"cam-{n}-{seq % streams}", seq + 1)
            rx.sent_at[p.frame_id] = time.perf_counter()
            await store.write_predictions(r, rs, [p])
            seq += 1
            if seq % max(1, int(rate)) == 0:
                rss.append(api.memory_info().rss / 2**20)
        # the last messages' way through
        deadline = time.perf_counter() + 5
        while rx.received + rx.dropped < total * n and time.perf_counter() < deadline:
            await asyncio.sleep(0.05)
        cpu = api.cpu_percent(None)
    finally:
        await r.aclose()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    d = np.asarray(rx.delays_ms) if rx.delays_ms else np.zeros(1)
    return {
        "p50_ms": float(np.percentile(d, 50)),
        "p99_ms": float(np.percentile(d, 99)),
        "max_ms": float(d.max()),
        "expected": float(total * n),
        "received": float(rx.received),
        "dropped": float(rx.dropped),
        "cpu_pct": float(cpu),
        "rss_mb": float(max(rss) if rss else api.memory_info().rss / 2**20),
        "delays": d.tolist(),  # type: ignore[dict-item]
    }


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--subscribers", default="10,100,500", help="comma-separated N values")
    ap.add_argument("--rate", type=float, default=20.0, help="predictions written per second")
    ap.add_argument("--seconds", type=float, default=20.0, help="writing time per level")
    ap.add_argument("--streams", type=int, default=4, help="streams the predictions spread over")
    ap.add_argument("--queue", type=int, default=256, help="HARCLIP_API__WS_QUEUE_SIZE")
    ap.add_argument("--no-plot", action="store_true")
    ap.add_argument("--plot-path", type=Path, default=ROOT / "bench/results/fanout-delay.png")
    args = ap.parse_args(argv)
    levels = [int(x) for x in args.subscribers.split(",") if x.strip()]

    work = Path(tempfile.mkdtemp(prefix="harclip-fanout-"))
    console.print("building a tiny bundle ...")
    bundle = build_bundle(work / "bundle")
    prefix = f"harclip-fanout-{uuid.uuid4().hex[:8]}"
    proc, url = start_api(bundle, prefix, args.queue)
    results: dict[int, dict[str, float]] = {}
    try:
        api = psutil.Process(proc.pid)
        for n in levels:
            console.print(f"[bold]N = {n}[/bold]")
            results[n] = asyncio.run(
                run_level(url, api, prefix, n, args.rate, args.seconds, args.streams)
            )
    finally:
        proc.terminate()
        proc.wait(30)
        _cleanup(prefix)

    table = Table(title=f"WebSocket fan-out, {args.rate:g} predictions/s over {args.streams} "
                        f"streams, {args.seconds:g} s per level ({platform.node()}, "
                        f"{os.cpu_count()} CPUs)")  # fmt: skip
    for col in ("subscribers", "messages", "received", "dropped", "p50 ms", "p99 ms", "max ms",
                "API CPU %", "API RSS MB"):  # fmt: skip
        table.add_column(col, justify="right")
    for n, m in results.items():
        cells = [f"{m[k]:.0f}" for k in ("expected", "received", "dropped")]
        cells += [f"{m[k]:.1f}" for k in ("p50_ms", "p99_ms", "max_ms")]
        cells += [f"{m[k]:.0f}" for k in ("cpu_pct", "rss_mb")]
        table.add_row(str(n), *cells)
    Console().print(table)
    plot = None
    if not args.no_plot:
        plot = latency_histogram(
            {f"N={n}": m["delays"] for n, m in results.items()},  # type: ignore[misc]
            args.plot_path, "Redis write -> WebSocket receipt", unit="messages",
        )  # fmt: skip
    out: dict[str, object] = {"rate": args.rate, "seconds": args.seconds, "streams": args.streams}
    for n, m in results.items():
        for key in ("p50_ms", "p99_ms", "dropped", "cpu_pct", "rss_mb"):
            out[f"{key}_{n}"] = round(m[key], 2)
        out[f"received_{n}"] = int(m["received"])
        out[f"expected_{n}"] = int(m["expected"])
    out["delay_plot"] = None if plot is None else str(plot)
    print(json.dumps(out))
    return 0


def _cleanup(prefix: str) -> None:
    import redis

    from harclip.config import RedisSettings

    r = redis.Redis.from_url(RedisSettings().url)
    keys = list(r.scan_iter(f"{prefix}*", count=1000))
    if keys:
        r.delete(*keys)
    r.close()


if __name__ == "__main__":
    raise SystemExit(main())
