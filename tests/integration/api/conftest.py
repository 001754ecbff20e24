"""Fixtures of the API's tests: the API in the test's event loop (`serve`), a local image server,
and a worker process on the test's names (helpers: tests/support/api.py)."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import pytest

from harclip.client import AsyncClient
from harclip.config import AuthSettings
from harclip.services.child import Child
from tests.support.api import (
    ADMIN_KEY,
    ImageHandler,
    Serve,
    api_settings,
    child_settings,
    gzip_bomb,
    serve_app,
)
from tests.support.processes import env_of, start
from tests.support.scoped import Unique

_DEFAULT = object()


@pytest.fixture
def serve(unique: Unique, tiny_bundle: Path) -> Serve:
    """`async with serve(**api_fields) as client:` runs the API on this test's unique names.
    Without `auth=...` auth is off with `ADMIN_KEY` as its admin key, which the client sends
    (pass `api_key=None` for an anonymous client)."""

    def start(api_key: Any = _DEFAULT, **api: Any) -> AbstractAsyncContextManager[AsyncClient]:
        if "auth" not in api:
            api["auth"] = AuthSettings(keys={ADMIN_KEY: "admin"})
            api_key = ADMIN_KEY if api_key is _DEFAULT else api_key
        key = None if api_key is _DEFAULT else api_key
        return serve_app(api_settings(unique.settings, **api), tiny_bundle, key)

    return start


@pytest.fixture
def image_server(sample_photos: list[Path]) -> Iterator[str]:
    ImageHandler.photo = sample_photos[0].read_bytes()
    ImageHandler.bomb = ImageHandler.bomb or gzip_bomb(64 * 1024 * 1024)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), ImageHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture
def worker(unique: Unique, tiny_bundle: Path) -> Iterator[Child]:
    """`python -m consumers` on this test's names (with `child_settings`)."""
    proc = start("consumers", "--bundle", str(tiny_bundle),
                 env=env_of(child_settings(unique.settings)))  # fmt: skip
    yield proc
    proc.stop()
