"""The API served by a real uvicorn on a free loopback port, inside the test's event loop, over
real Redis, Elasticsearch and Kafka with names unique to each test."""

from __future__ import annotations

import asyncio
import socket
import struct
import zlib
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from api.app import create_app
from harclip.client import AsyncClient
from harclip.config import Settings
from harclip.model.bundle import Bundle
from tests.integration.conftest import Unique

Serve = Callable[..., AbstractAsyncContextManager[AsyncClient]]


def api_settings(base: Settings, **api: Any) -> Settings:
    """`base` with `api.*` fields replaced (and `auth` when given as `auth=...`)."""
    auth = api.pop("auth", None)
    update: dict[str, Any] = {"api": base.api.model_copy(update=api)}
    if auth is not None:
        update["auth"] = auth
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


@pytest.fixture
def serve(unique: Unique, tiny_bundle: Path) -> Serve:
    """`async with serve(**api_fields) as client:` runs the API on this test's unique names."""

    def start(api_key: str | None = None, **api: Any) -> AbstractAsyncContextManager[AsyncClient]:
        return serve_app(api_settings(unique.settings, **api), tiny_bundle, api_key)

    return start


def bomb_png(width: int = 50_000, height: int = 50_000) -> bytes:
    """A small PNG whose header claims `width` × `height` pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 1024)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
