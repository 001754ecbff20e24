"""API keys on REST and WebSocket: missing or unknown -> 401, too weak a role -> 403, over the
rate -> 429; keys in headers, bearer tokens and (WebSocket) the query string."""

from __future__ import annotations

from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from harclip.client import AsyncClient, Forbidden, RateLimited, Unauthorized
from harclip.config import AuthSettings
from tests.support.api import Serve

KEYS = {"key-read": "read", "key-predict": "predict", "key-admin": "admin"}


def _auth(rate: float = 1000.0, burst: int = 1000) -> AuthSettings:
    return AuthSettings(enabled=True, keys=KEYS, rate_per_s=rate, burst=burst)  # type: ignore[arg-type]


async def test_rest_keys_and_roles(serve: Serve, sample_photos: list[Path]) -> None:
    jpeg = sample_photos[0].read_bytes()
    async with serve(auth=_auth()) as anon:
        url = anon.url
        h = anon._http
        assert (await h.get("/health")).status_code == 200  # probes stay open
        for path in ("/streams", "/labels", "/search?q=bike"):
            resp = await h.get(path)
            assert resp.status_code == 401 and resp.json()["error"]["code"] == "missing_api_key"
        wrong = await h.get("/labels", headers={"X-API-Key": "nope"})
        assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "invalid_api_key"
        with pytest.raises(Unauthorized):
            await anon.predict_bytes(jpeg)
        async with AsyncClient(url, "key-read") as reader:
            assert (await reader.labels()).labels
            with pytest.raises(Forbidden) as e:
                await reader.predict_bytes(jpeg)
            assert "role 'read'" in e.value.message
        async with AsyncClient(url, "key-predict") as predictor:
            assert (await predictor.predict_bytes(jpeg)).label
            with pytest.raises(Forbidden):
                await predictor.set_labels(["a", "b"])
        bearer = await h.get("/labels", headers={"Authorization": "Bearer key-admin"})
        assert bearer.status_code == 200


async def test_rate_limit(serve: Serve) -> None:
    async with serve(auth=_auth(rate=0.001, burst=3)) as anon:
        async with AsyncClient(anon.url, "key-read") as reader:
            for _ in range(3):
                await reader.labels()
            with pytest.raises(RateLimited) as e:
                await reader.labels()
            assert e.value.status == 429 and e.value.retry_after >= 1
        async with AsyncClient(anon.url, "key-admin") as admin:
            await admin.labels()  # another key, another bucket


async def test_websocket_keys(serve: Serve) -> None:
    async with serve(auth=_auth()) as anon:
        for path, key, status in [
            ("/ws/streams/cam", None, 401),
            ("/ws/streams", "nope", 401),
            ("/ws/ingest/cam", None, 401),
            ("/ws/ingest/cam", "key-read", 403),
        ]:
            url = anon.ws_url(path, {"api_key": key} if key else {})
            with pytest.raises(InvalidStatus) as e:
                async with connect(url):
                    pass
            assert e.value.response.status_code == status, path
        ok = anon.ws_url("/ws/streams/cam", {"api_key": "key-read"})
        async with connect(ok) as ws:
            await ws.ping()
        async with connect(
            anon.ws_url("/ws/streams"), additional_headers={"X-API-Key": "key-read"}
        ):
            pass
        async with AsyncClient(anon.url, "key-read") as reader:
            with pytest.raises(Forbidden):
                await reader.ingest("cam", [b"x"])


async def test_ingest_keys_scoped_to_stream_patterns(
    serve: Serve, sample_photos: list[Path]
) -> None:
    """A key scoped to `lobby-*` may ingest into lobby streams only: it cannot overwrite a real
    camera's latest frame. A bare role (today's form) may ingest anywhere."""
    photo = sample_photos[0].read_bytes()
    keys = {
        "key-lobby": {"role": "predict", "streams": ["lobby-*"]},
        "key-cams": "predict",
    }
    auth = AuthSettings(enabled=True, keys=keys)  # type: ignore[arg-type]
    async with serve(auth=auth) as anon:
        async with AsyncClient(anon.url, "key-lobby") as lobby:
            assert [a.seq for a in await lobby.ingest("lobby-1", [photo])] == [0]
            with pytest.raises(Forbidden) as e:
                await lobby.ingest("cam-1", [photo])
            assert e.value.status == 403 and "cam-1" in e.value.message
            assert (await lobby.predict_bytes(photo)).label  # the scope is about ingest only
        async with AsyncClient(anon.url, "key-cams") as cams:
            assert [a.seq for a in await cams.ingest("cam-1", [photo])] == [0]
