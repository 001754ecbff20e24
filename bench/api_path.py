"""The API's own cost per request at concurrency 1, in process (no sockets, no engine time).

    python -m bench.api_path [--requests 200] [--data DIR]

Serves a random tiny CLIP bundle (built once under state/bench/) with `create_app` through
httpx's ASGI transport and sends `--requests` requests one at a time to `/predict/image`
(multipart) and `/predict` (base64 JSON), the same sample photo each. Per route: p50 of the whole
request and of the request less the decode and inference the response reports
(`p50_overhead_ms`: middlewares, gate, body parsing, dependencies, batcher hand-off, response),
and the thread hand-offs per request (`anyio.to_thread` and `loop.run_in_executor` calls: each
one wakes a thread and comes back through the event loop; on a loaded machine each may wait for
a core). The last stdout line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio.to_thread
import httpx
from rich.console import Console
from rich.table import Table

from bench import harness

_HOPS = [0]


def _count_hops() -> None:
    """Count thread hand-offs: starlette's `run_in_threadpool` and `run_in_executor`."""
    run_sync = anyio.to_thread.run_sync

    async def counted(*args: Any, **kwargs: Any) -> Any:
        _HOPS[0] += 1
        return await run_sync(*args, **kwargs)

    anyio.to_thread.run_sync = counted  # type: ignore[assignment]
    run_in_executor = asyncio.BaseEventLoop.run_in_executor

    def counted_exec(self: Any, *args: Any) -> Any:
        _HOPS[0] += 1
        return run_in_executor(self, *args)

    asyncio.BaseEventLoop.run_in_executor = counted_exec  # type: ignore[method-assign,assignment]


def tiny_bundle(out: Path) -> Path:
    if (out / "manifest.json").is_file():
        return out
    from harclip.clip.export import ExportOptions, export_bundle
    from harclip.clip.init import init_model
    from harclip.clip.load import load_clip

    model = init_model(out.parent / "tiny-model", "tiny")
    export_bundle(load_clip(model), out, ExportOptions(formats=("onnx",)))
    return out


async def measure(bundle: Path, photo: bytes, n: int) -> dict[str, dict[str, float]]:
    from api.app import create_app
    from harclip.config import load_settings
    from harclip.model.bundle import Bundle

    base = load_settings()
    settings = base.model_copy(update={
        "batching": base.batching.model_copy(update={"max_batch": 1}),
        "api": base.api.model_copy(update={"follow_control": False}),
        "log_level": "WARNING",
    })  # fmt: skip
    app = create_app(settings, Bundle.load(bundle))
    b64 = base64.b64encode(photo).decode()
    out: dict[str, dict[str, float]] = {}
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as c:
            routes: dict[str, Callable[[], Awaitable[httpx.Response]]] = {
                "predict_image": lambda: c.post(
                    "/predict/image", files={"files": ("p.jpg", photo)}
                ),
                "predict_base64": lambda: c.post("/predict", json={"image": b64}),
            }
            for name, request in routes.items():
                for _ in range(10):  # warm-up
                    (await request()).raise_for_status()
                total, overhead = [], []
                _HOPS[0] = 0
                for _ in range(n):
                    t = time.perf_counter()
                    r = await request()
                    ms = (time.perf_counter() - t) * 1000
                    r.raise_for_status()
                    body = r.json()
                    lat = (body["results"][0] if "results" in body else body)["latency_ms"]
                    total.append(ms)
                    overhead.append(ms - lat["decode"] - lat["infer"])
                out[name] = {
                    "p50_ms": round(statistics.median(total), 3),
                    "p50_overhead_ms": round(statistics.median(overhead), 3),
                    "thread_handoffs_per_request": round(_HOPS[0] / n, 2),
                }
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench.api_path", description=__doc__.splitlines()[0]
    )
    p.add_argument("--requests", type=int, default=200)
    p.add_argument("--data", type=Path, help="sample data folder (default: HARCLIP_SAMPLE_DATA)")
    args = p.parse_args(argv)
    if args.requests < 1:
        harness.fail("--requests must be >= 1")
    photo = harness.sample_photos(args.data)[0].read_bytes()
    bundle = tiny_bundle(harness.ROOT / "state" / "bench" / "tiny-bundle")
    _count_hops()
    result: dict[str, Any] = asyncio.run(measure(bundle, photo, args.requests))
    t = Table(title=f"API request path at c1, in process, {args.requests} requests per route")
    for col in ("route", "p50 ms", "p50 overhead ms", "thread hand-offs / request"):
        t.add_column(col)
    for route, row in result.items():
        t.add_row(route, f"{row['p50_ms']:.2f}", f"{row['p50_overhead_ms']:.2f}",
                  f"{row['thread_handoffs_per_request']:g}")  # fmt: skip
    Console().print(t)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
