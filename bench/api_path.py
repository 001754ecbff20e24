"""The API's own cost per request at concurrency 1, in process (no sockets, no engine time).

    python -m bench.api_path [--requests 200] [--data DIR]

Serves a random tiny CLIP bundle (built once under state/bench/) with `create_app` and sends
`--requests` requests one at a time straight through ASGI (a prepared body, no client, no
socket) to `/predict/image` (multipart) and `/predict` (base64 JSON), the same sample photo each.
Per route: p50 of the whole request and of the request less the decode and inference the
response reports (`p50_overhead_ms`: middlewares, gate, body parsing, dependencies, batcher
hand-off, response), CPU ms per request of the whole process (`cpu_ms_per_request`, the tiny
engine's `infer_ms_per_request` included), and the thread hand-offs per request
(`anyio.to_thread` and `loop.run_in_executor` calls: each
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
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio.to_thread
from rich.console import Console
from rich.table import Table

from bench import _http, harness

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


def _asgi_call(app: Any, path: str, content_type: bytes, body: bytes) -> Callable[[], Any]:
    """One request to `app` straight through ASGI, with a body encoded once: no client and no
    socket in the figures (httpx's ASGI transport built each multipart body in this process)."""
    headers = [(b"host", b"localhost"), (b"content-type", content_type),
               (b"content-length", str(len(body)).encode())]  # fmt: skip

    async def call() -> dict[str, Any]:
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
                 "method": "POST", "scheme": "http", "path": path, "raw_path": path.encode(),
                 "query_string": b"", "root_path": "", "headers": headers,
                 "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 80)}  # fmt: skip
        sent = False
        parts: list[bytes] = []
        status = 0

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            await asyncio.Event().wait()  # no disconnect while the app answers
            raise AssertionError("unreachable")

        async def send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                parts.append(message.get("body", b""))

        await app(scope, receive, send)
        if status != 200:
            raise RuntimeError(f"{path}: HTTP {status}: {b''.join(parts)[:300]!r}")
        doc: dict[str, Any] = json.loads(b"".join(parts))
        return doc

    return call


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
    b64 = json.dumps({"image": base64.b64encode(photo).decode()}).encode()
    multipart = _http.multipart_request("http://localhost", "/predict/image", "p.jpg", photo)
    out: dict[str, dict[str, float]] = {}
    async with app.router.lifespan_context(app):
        routes = {
            "predict_image": _asgi_call(app, "/predict/image",
                                        b"multipart/form-data; boundary=" + _http.BOUNDARY.encode(),
                                        multipart.partition(b"\r\n\r\n")[2]),
            "predict_base64": _asgi_call(app, "/predict", b"application/json", b64),
        }  # fmt: skip
        for name, request in routes.items():
            for _ in range(10):  # warm-up
                await request()
            total, overhead, engine_ms = [], [], 0.0
            _HOPS[0] = 0
            cpu = time.process_time()
            for _ in range(n):
                t = time.perf_counter()
                body = await request()
                ms = (time.perf_counter() - t) * 1000
                lat = (body["results"][0] if "results" in body else body)["latency_ms"]
                total.append(ms)
                overhead.append(ms - lat["decode"] - lat["infer"])
                engine_ms += lat["infer"]
            cpu = time.process_time() - cpu
            out[name] = {
                "p50_ms": round(statistics.median(total), 3),
                "p50_overhead_ms": round(statistics.median(overhead), 3),
                "cpu_ms_per_request": round(cpu * 1000 / n, 3),
                "infer_ms_per_request": round(engine_ms / n, 3),
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
    for col in ("route", "p50 ms", "p50 overhead ms", "CPU ms / request", "infer ms / request",
                "thread hand-offs / request"):  # fmt: skip
        t.add_column(col)
    for route, row in result.items():
        t.add_row(route, f"{row['p50_ms']:.2f}", f"{row['p50_overhead_ms']:.2f}",
                  f"{row['cpu_ms_per_request']:.2f}", f"{row['infer_ms_per_request']:.2f}",
                  f"{row['thread_handoffs_per_request']:g}")  # fmt: skip
    Console().print(t)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
