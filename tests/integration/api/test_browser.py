"""The API in a browser's world, over a real server: a DNS-rebinding page (a foreign Host) and a
foreign page (a foreign Origin) are refused on REST and WebSocket handshakes alike, writes need an
admin key even with auth off, and open routes tell anonymous callers nothing internal."""

from __future__ import annotations

import asyncio
import base64
import json
import os
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from websockets.asyncio.client import connect

from harclip.client import AsyncClient, Unauthorized
from harclip.config import AuthSettings
from tests.support.api import ADMIN_KEY, Serve

EVIL = "http://evil.example"


async def _ws_status(url: str, headers: dict[str, str]) -> int:
    """The HTTP status a WebSocket handshake is answered with (101 if it is accepted). Written by
    hand: a client library sets its own Host header."""
    parts = urlsplit(url)
    fields = {
        "Host": parts.netloc, "Upgrade": "websocket", "Connection": "Upgrade",
        "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(),
        "Sec-WebSocket-Version": "13", **headers,
    }  # fmt: skip
    request = f"GET {parts.path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in fields.items())
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    try:
        writer.write(request.encode() + b"\r\n")
        status_line = await asyncio.wait_for(reader.readline(), 30)
        return int(status_line.split()[1])
    finally:
        writer.close()
        await writer.wait_closed()


async def test_dns_rebinding_and_foreign_pages_are_refused(serve: Serve) -> None:
    async with serve(cors_origins=("https://ui.example",)) as client:
        h = client._http
        host = h.base_url.netloc.decode()
        # DNS rebinding: the page's own name now points at 127.0.0.1, so its Host header is it.
        for method, path in (("GET", "/labels"), ("PUT", "/labels"), ("GET", "/streams")):
            resp = await h.request(method, path, headers={"Host": "evil.example:8000"})
            assert resp.status_code == 400, (method, path, resp.text)
            assert resp.json()["error"]["code"] == "invalid_host"
        rebinding = {"Host": "evil.example:8000", "Origin": "http://evil.example:8000"}
        for path in ("/ws/streams/cam", "/ws/streams", "/ws/ingest/cam"):
            assert await _ws_status(client.ws_url(path), rebinding) == 400, path

        # A page of another origin: refused on every route, WebSocket handshakes first.
        for path in ("/ws/streams/cam", "/ws/streams", "/ws/ingest/cam"):
            assert await _ws_status(client.ws_url(path), {"Origin": EVIL}) == 403, path
            assert await _ws_status(client.ws_url(path), {"Origin": "null"}) == 403, path
        resp = await h.post("/predict/image", files={"files": ("a.jpg", b"x")},
                            headers={"Origin": EVIL})  # fmt: skip
        assert resp.status_code == 403 and resp.json()["error"]["code"] == "origin_not_allowed"

        # The API's own pages (/docs) and the configured origins may call; programs send no Origin.
        own = {"Origin": f"http://{host}"}
        assert (await h.get("/labels", headers=own)).status_code == 200
        listed = await h.get("/labels", headers={"Origin": "https://ui.example"})
        assert listed.status_code == 200
        assert listed.headers["access-control-allow-origin"] == "https://ui.example"
        async with connect(client.ws_url("/ws/streams/cam"), additional_headers=own) as ws:
            assert json.loads(await ws.recv())["type"] == "subscribed"
        async with connect(client.ws_url("/ws/streams/cam")) as ws:
            assert json.loads(await ws.recv())["type"] == "subscribed"
        for name in ("localhost", "127.0.0.1", "[::1]"):
            port = host.rpartition(":")[2]
            resp = await h.get("/health", headers={"Host": f"{name}:{port}"})
            assert resp.status_code == 200, name


async def test_with_auth_off_writes_need_an_admin_key(
    serve: Serve, sample_photos: list[Path]
) -> None:
    photo = sample_photos[0].read_bytes()
    keys = {ADMIN_KEY: "admin", "hk_reader": "read"}
    async with serve(auth=AuthSettings(keys=keys)) as anon:  # type: ignore[arg-type]
        assert (await anon.labels()).labels  # reads are open
        assert (await anon.predict_bytes(photo)).label  # so is predict
        with pytest.raises(Unauthorized) as e:
            await anon.set_labels(["a", "b"])
        assert e.value.code == "missing_api_key" and "auth is off" in e.value.message
        with pytest.raises(Unauthorized):
            await anon.ingest("cam", [photo])
        async with AsyncClient(anon.url, "hk_reader") as reader:
            resp = await reader._http.put("/labels", json={"labels": ["a", "b"]})
            assert resp.status_code == 403
        async with AsyncClient(anon.url, ADMIN_KEY) as admin:
            assert (await admin.set_labels(["a", "b"])).labels == ["a", "b"]
            assert [a.seq for a in await admin.ingest("cam", [photo])] == [0]


async def test_open_routes_tell_anonymous_callers_nothing_internal(
    serve: Serve, tiny_bundle: Path
) -> None:
    from harclip.model.bundle import Bundle

    local_path = Bundle.load(tiny_bundle).manifest.base_model  # the tiny model's folder
    assert local_path.startswith("/")
    auth = AuthSettings(enabled=True, keys={"hk_reader": "read"})  # type: ignore[dict-item]
    async with serve(auth=auth) as anon:
        info = await anon.info()
        assert info.labels == [] and info.auth is True
        assert info.base_model == "local:" + Path(local_path).name
        async with AsyncClient(anon.url, "hk_reader") as reader:
            known = await reader.info()
            assert len(known.labels) == 15 and known.base_model == local_path
        resp = await anon._http.request("PROPFIND", "/")  # one of the many the server parses
        assert resp.status_code == 405
        metrics = (await anon._http.get("/metrics")).text
        assert 'method="PROPFIND"' not in metrics and 'method="other"' in metrics


async def test_ready_hides_reasons_from_anonymous_callers(serve: Serve) -> None:
    from harclip.config import RedisSettings

    dead = RedisSettings(url="redis://127.0.0.1:1/0")  # nothing listens on port 1
    auth = AuthSettings(enabled=True, keys={"hk_reader": "read"})  # type: ignore[dict-item]
    async with serve(auth=auth, redis=dead) as anon:
        resp = await anon._http.get("/ready")
        assert resp.status_code == 503
        assert resp.json()["checks"]["redis"] == "unavailable", resp.text
        assert "127.0.0.1" not in resp.text and "Error" not in resp.text
        detailed = await anon._http.get("/ready", headers={"X-API-Key": "hk_reader"})
        assert detailed.status_code == 503
        assert detailed.json()["checks"]["redis"] not in ("ok", "unavailable")


async def test_ready_without_redis_when_only_the_model_is_required(serve: Serve) -> None:
    from harclip.config import RedisSettings

    dead = RedisSettings(url="redis://127.0.0.1:1/0")
    async with serve(redis=dead, ready_requires=(), api_key=None) as anon:
        resp = await anon._http.get("/ready")
        assert resp.status_code == 200, resp.text
        assert resp.json()["ready"] is True
        assert resp.json()["checks"]["redis"] == "unavailable"  # checked, reported, no reason
