"""What the API takes on before it does any work, over a real server: a key is checked before a
body is read (an unauthenticated 8 MB upload is never parsed), every refusal and every WebSocket
message costs a token of the rate limit, and overload answers 503 with Retry-After before the
body is read."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.formparsers import MultiPartParser
from websockets.asyncio.client import connect

from api.runtime import Runtime
from harclip.client import AsyncClient, Forbidden, RateLimited, Unauthorized
from harclip.config import AuthSettings
from tests.support.api import Serve

RECV_TIMEOUT_S = 30.0


@pytest.fixture
def parsed(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """Counts the multipart bodies the app parses (one entry per parse)."""
    calls: list[int] = []
    original = MultiPartParser.parse

    async def counting(self: MultiPartParser) -> Any:
        calls.append(1)
        return await original(self)

    monkeypatch.setattr(MultiPartParser, "parse", counting)
    yield calls


def _auth(keys: dict[str, Any], rate: float = 1000.0, burst: int = 1000) -> AuthSettings:
    return AuthSettings(enabled=True, keys=keys, rate_per_s=rate, burst=burst)


async def test_a_key_is_checked_before_the_body_is_parsed(
    serve: Serve, parsed: list[int], sample_photos: list[Path]
) -> None:
    big = b"\xff\xd8\xff" + bytes(8 * 1024 * 1024)
    keys = {"k-read": "read", "k-predict": "predict"}
    async with serve(auth=_auth(keys), max_body_bytes=16 * 1024 * 1024) as anon:
        with pytest.raises(Unauthorized):
            await anon.predict_bytes(big)
        async with AsyncClient(anon.url, "nope") as wrong:
            with pytest.raises(Unauthorized):
                await wrong.predict_bytes(big)
        async with AsyncClient(anon.url, "k-read") as reader:
            with pytest.raises(Forbidden):
                await reader.predict_bytes(big)
        assert parsed == []  # three refusals, not one body parsed
        async with AsyncClient(anon.url, "k-predict") as predictor:
            assert (await predictor.predict_bytes(sample_photos[0].read_bytes())).label
        assert parsed == [1]


async def test_refusals_frames_and_resume_messages_cost_tokens(
    serve: Serve, sample_photos: list[Path]
) -> None:
    keys = {"k-read": "read", "k-read-ws": "read", "k-predict": "predict"}
    async with serve(auth=_auth(keys, rate=0.001, burst=3)) as anon:
        async with AsyncClient(anon.url, "k-read") as reader:
            for _ in range(3):  # 403s spend the key's tokens too
                with pytest.raises(Forbidden):
                    await reader.set_labels(["a", "b"])
            with pytest.raises(RateLimited):
                await reader.labels()
        async with AsyncClient(anon.url, "guess") as guesser:
            for _ in range(3):  # unknown keys spend the client address's tokens
                with pytest.raises(Unauthorized):
                    await guesser.labels()
            with pytest.raises(RateLimited):
                await guesser.labels()

        # Ingest: the handshake takes a token, then every frame one: 2 acks, then 429 per frame.
        photo = sample_photos[0].read_bytes()
        url = anon.ws_url("/ws/ingest/cam", {"api_key": "k-predict"})
        async with connect(url) as ws:
            replies = []
            for _ in range(5):
                await ws.send(photo)
                replies.append(json.loads(await asyncio.wait_for(ws.recv(), RECV_TIMEOUT_S)))
        assert [r["type"] for r in replies] == ["ack", "ack", "error", "error", "error"]
        assert {r["status"] for r in replies[2:]} == {429} and replies[4]["seq"] == 2
        assert all(r["retry_after"] >= 1 for r in replies[2:]), replies

        # Resume messages: the handshake takes a token, two resumes two more, then 429s.
        url = anon.ws_url("/ws/streams/cam", {"api_key": "k-read-ws"})
        async with connect(url) as ws:
            assert json.loads(await ws.recv())["type"] == "subscribed"
            for _ in range(4):
                await ws.send(json.dumps({"type": "resume", "after": "0-0"}))
            for _ in range(2):
                reply = json.loads(await asyncio.wait_for(ws.recv(), RECV_TIMEOUT_S))
                assert (reply["type"], reply["status"]) == ("error", 429), reply


async def test_a_client_ingesting_faster_than_its_rate_is_paced_to_it(
    serve: Serve, sample_photos: list[Path]
) -> None:
    photo = sample_photos[0].read_bytes()
    auth = _auth({"k-predict": "predict"}, rate=2.0, burst=2)
    async with serve(auth=auth) as anon, AsyncClient(anon.url, "k-predict") as camera:
        acks = await camera.ingest("cam-paced", [photo] * 5)
        assert [a.seq for a in acks] == [0, 1, 2, 3, 4]  # refused frames were sent again
        with pytest.raises(RateLimited) as e:  # not allowed to wait: the refusal raises
            await camera.ingest("cam-paced", [photo] * 5, retry_for_s=0)
        assert e.value.retry_after >= 1


async def _hold_a_predict(url: str) -> asyncio.StreamWriter:
    """Start a POST /predict and send its headers and one byte of its JSON body: the request
    holds its slot while the server waits for the rest."""
    host, _, port = url.removeprefix("http://").partition(":")
    _, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        b"POST /predict HTTP/1.1\r\nHost: " + f"{host}:{port}".encode() + b"\r\n"
        b"Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"
    )
    await writer.drain()
    return writer


async def test_overload_answers_503_before_reading_the_body(
    serve: Serve, parsed: list[int], sample_photos: list[Path]
) -> None:
    photo = sample_photos[0].read_bytes()
    async with serve(max_concurrent_predicts=1) as client:
        await client.info()  # started
        runtime: Runtime = client.app.state.runtime  # type: ignore[attr-defined]
        held = await _hold_a_predict(client.url)
        try:
            await asyncio.wait_for(runtime.predicts.wait_until(lambda n: n == 1), RECV_TIMEOUT_S)
            resp = await client._http.post("/predict/image", files={"files": ("a.jpg", photo)})
            assert resp.status_code == 503, resp.text
            assert resp.json()["error"]["code"] == "overloaded"
            assert resp.headers["retry-after"] == "1"
            b64 = await client._http.post("/predict", json={"image": "aGk="})
            assert b64.status_code == 503
            assert parsed == []  # refused before their bodies were read into anything
        finally:
            held.close()  # else the server would wait for its body when it shuts down
            await held.wait_closed()
        await asyncio.wait_for(runtime.predicts.wait_until(lambda n: n == 0), RECV_TIMEOUT_S)
        assert (await client.predict_bytes(photo)).label
        assert runtime.predicts.refused == 2
