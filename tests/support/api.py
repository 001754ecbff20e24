"""Helpers of the API's tests: the API served by a real uvicorn on a free loopback port inside
the test's event loop, the admin key the test APIs have, scripted predictions written to Redis
and Elasticsearch, odd images, and the settings of API child processes."""

from __future__ import annotations

import asyncio
import http.server
import socket
import struct
import zlib
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import numpy as np
import uvicorn

from api.app import create_app
from harclip.client import AsyncClient, Subscription, SyncSubscription
from harclip.config import AuthSettings, ElasticsearchSettings, Settings
from harclip.io import store
from harclip.messages import LabelScore, Latency, ModelRef, Prediction, new_frame_id
from harclip.model.bundle import Bundle
from tests.support.scoped import Unique

Serve = Callable[..., AbstractAsyncContextManager[AsyncClient]]
T0 = 1_764_223_200_000  # captured_at of the first test prediction, ms since epoch


def api_settings(base: Settings, **api: Any) -> Settings:
    """`base` with `api.*` fields replaced (and the `auth` or `redis` section when given as
    `auth=...`, `redis=...`)."""
    update: dict[str, Any] = {k: api.pop(k) for k in ("auth", "redis") if k in api}
    update["api"] = base.api.model_copy(update=api)
    return base.model_copy(update=update)


@asynccontextmanager
async def serve_app(settings: Settings, bundle: Path, api_key: str | None = None
                    ) -> AsyncIterator[AsyncClient]:  # fmt: skip
    """Serve the API until the block ends; yields a client of it. The listening socket exists
    before the server starts, so the first request simply waits for start-up."""
    app = create_app(settings, Bundle.load(bundle))
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(256)
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False, lifespan="on"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    client = AsyncClient(f"http://127.0.0.1:{port}", api_key)
    client.app = app  # type: ignore[attr-defined]
    try:
        yield client
    finally:
        await client.aclose()
        server.should_exit = True
        await task
        sock.close()


# With auth off, writes (PUT /labels, ingest) still need an admin key: the test APIs have this
# one, and the client `serve` yields sends it unless a test says otherwise.
ADMIN_KEY = "hk_test-admin-key"


def bomb_png(width: int = 50_000, height: int = 50_000) -> bytes:
    """A small PNG whose header claims `width` × `height` pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 1024)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def prediction(stream_id: str, seq: int, label: str, score: float) -> Prediction:
    at = T0 + seq * 100
    return Prediction(
        frame_id=new_frame_id(at), stream_id=stream_id, seq=seq, captured_at=at,
        inferred_at=at + 20, label=label, score=score,
        top_k=[LabelScore(label=label, score=score)],
        model=ModelRef(name="tiny", version="1", head_version=1),
        latency_ms=Latency(queue=1.0, infer=5.0, total=20.0),
    )  # fmt: skip


async def write_redis(unique: Unique, preds: list[Prediction], frame: bytes | None = None) -> None:
    r = store.make_redis(unique.settings.redis)
    try:
        frames = {preds[-1].frame_id: frame} if frame else None
        await store.write_predictions(r, unique.settings.redis, preds, frames)
    finally:
        await r.aclose()


async def wait_subscribed(sub: Subscription | SyncSubscription, timeout_s: float = 30.0) -> None:
    """Until the server said `subscribed` to `sub` (it reads for it from then on)."""
    if isinstance(sub, Subscription):
        await asyncio.wait_for(sub.subscribed.wait(), timeout_s)
    elif not await asyncio.to_thread(sub.subscribed.wait, timeout_s):
        raise AssertionError("the subscription did not start")


def _gzip(data: bytes) -> bytes:
    c = zlib.compressobj(9, zlib.DEFLATED, 31)  # gzip framing
    return c.compress(data) + c.flush()


def gzip_bomb(size: int) -> bytes:
    """`size` zero bytes, gzip-compressed twice (a few KB)."""
    c = zlib.compressobj(9, zlib.DEFLATED, 31)
    chunk = bytes(1024 * 1024)
    once = b"".join(c.compress(chunk) for _ in range(size // len(chunk))) + c.flush()
    return _gzip(once)


class ImageHandler(http.server.BaseHTTPRequestHandler):
    """/photo: a JPEG; /to?u=URL: a redirect; /loop: redirects to itself; /big: 20 MB;
    /gzip2: 64 MiB in two gzip layers (`Content-Encoding: gzip, gzip`); /gzip: the photo gzipped
    although the client asked for identity."""

    photo = b""
    bomb = b""

    def do_GET(self) -> None:
        if self.path == "/photo":
            self._send(200, self.photo)
        elif self.path.startswith("/to?u="):
            self.send_response(302)
            self.send_header("Location", self.path[len("/to?u=") :])
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif self.path == "/loop":
            self.send_response(302)
            self.send_header("Location", "/loop")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif self.path == "/big":
            self._send(200, b"\xff\xd8\xff" + b"\x00" * 20_000_000)
        elif self.path == "/gzip2":
            self._send(200, self.bomb, {"Content-Encoding": "gzip, gzip"})
        elif self.path == "/gzip":
            self._send(200, _gzip(self.photo), {"Content-Encoding": "gzip"})
        else:
            self._send(404, b"")

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


async def index_history(
    es_settings: ElasticsearchSettings,
    bundle: Path,
    items: list[tuple[Prediction, np.ndarray]],
    extra: list[Any] | None = None,
) -> None:
    """Index `items` (each a keyframe with its embedding) and `extra` (`search.Indexed`, e.g.
    frames behind a keyframe) in `bundle`'s embedding space, visible."""
    from harclip.io import search
    from harclip.io.es import make_es
    from harclip.io.indices import EmbeddingSpace, ensure_templates
    from harclip.model.bundle import Bundle

    m = Bundle.load(bundle).manifest
    space = EmbeddingSpace(m.name, str(m.version), m.embed_dim)
    es = make_es(es_settings)
    try:
        await ensure_templates(es, es_settings, space)
        rows = [search.Indexed(p, v, p.frame_id) for p, v in items] + list(extra or [])
        await search.index_predictions(es, es_settings, space, rows)
        await es.indices.refresh(index=es_settings.predictions_index)
    finally:
        await es.close()


def child_settings(s: Settings) -> Settings:
    """`s` for the API tests' child processes (API, worker): auth with the admin key the tests'
    clients send, and no frame dropped as too old while a worker still joins its group."""
    return s.model_copy(update={
        "auth": AuthSettings(keys={ADMIN_KEY: "admin"}),
        "batching": s.batching.model_copy(update={"max_age_ms": 600_000}),
    })  # fmt: skip
