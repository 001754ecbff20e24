"""The API's cheap predict path: a lone small upload decodes on the event loop (no decode-pool
hand-off) with the same checks and errors as the pool path; the API's ONNX Runtime threads sleep
when idle unless told to spin; the bench's light HTTP client frames requests and responses."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from api.metrics import ApiMetrics
from api.predictor import INLINE_DECODE_BYTES, Predictor, api_model_settings
from bench import _http
from harclip.config import ModelSettings, Settings, load_settings
from harclip.engines import create_engine
from harclip.model.bundle import Bundle
from harclip.wire import ApiError


def _settings(**api: Any) -> Settings:
    base = load_settings()
    return base.model_copy(update={"api": base.api.model_copy(update=api)})


@pytest.fixture
async def predictor(tiny_bundle: Path) -> AsyncIterator[Callable[..., Any]]:
    started: list[Predictor] = []

    async def make(**api: Any) -> tuple[Predictor, list[str]]:
        p = Predictor(_settings(**api), Bundle.load(tiny_bundle), ApiMetrics())
        await p.start()
        started.append(p)
        pooled: list[str] = []
        in_pool = p.in_pool

        async def counted(fn: Callable[..., Any], *args: Any) -> Any:
            pooled.append(args[0])  # the image's name
            return await in_pool(fn, *args)

        p.in_pool = counted  # type: ignore[method-assign]
        return p, pooled

    yield make
    for p in started:
        await p.close()
        p.close_engine()


def _jpeg(w: int, h: int) -> bytes:
    ok, buf = cv2.imencode(".jpg", np.full((h, w, 3), 128, np.uint8))
    assert ok
    return bytes(buf.tobytes())


async def test_lone_small_upload_decodes_on_the_loop(predictor: Any) -> None:
    p, pooled = await predictor()
    small, large = _jpeg(320, 240), _jpeg(800, 600)  # 76,800 and 480,000 pixels
    (one,) = await p.predict([("small.jpg", small)], 3)
    assert pooled == [] and len(one.top_k) == 3
    assert cv2.getNumThreads() == 1  # the API decodes on one thread per image
    await p.predict([("large.jpg", large)], 3)
    await p.predict([("a.jpg", small), ("b.jpg", small)], 3)
    big_file = small + b"\0" * INLINE_DECODE_BYTES  # few pixels, but too many bytes to check
    await p.predict([("big-file.jpg", big_file)], 3)
    assert pooled == ["large.jpg", "a.jpg", "b.jpg", "big-file.jpg"]  # all go to the pool


async def test_inline_and_pooled_decoding_agree(predictor: Any) -> None:
    inline, _ = await predictor()
    pooled_p, pooled = await predictor(inline_decode_pixels=0)
    data = _jpeg(320, 240)
    (a,) = await inline.predict([("p.jpg", data)], 5)
    (b,) = await pooled_p.predict([("p.jpg", data)], 5)
    assert pooled == ["p.jpg"]
    assert a.top_k == b.top_k and np.array_equal(a.embedding, b.embedding)


@pytest.mark.parametrize("inline_pixels", [400_000, 0])
async def test_inline_path_keeps_the_errors(predictor: Any, inline_pixels: int) -> None:
    p, _ = await predictor(inline_decode_pixels=inline_pixels)
    cases = [
        (b"not an image at all", 415, "upload.bin"),
        (b"", 422, "empty"),
        (_jpeg(320, 240)[:200], 422, "upload.bin"),  # truncated
    ]
    for data, status, words in cases:
        with pytest.raises(ApiError) as e:
            await p.predict([("upload.bin", data)], 3)
        assert e.value.status == status
        assert "upload.bin" in e.value.message and words in e.value.message


def test_api_engine_threads_sleep_unless_told(tiny_bundle: Path) -> None:
    assert api_model_settings(ModelSettings()).intra_op_spinning is False
    for told in (True, False):
        assert api_model_settings(ModelSettings(intra_op_spinning=told)).intra_op_spinning is told
    bundle = Bundle.load(tiny_bundle)
    size = bundle.manifest.image_size
    images = np.random.default_rng(0).integers(0, 255, (2, size, size, 3), dtype=np.uint8)
    out = []
    for spinning in (True, False):
        engine = create_engine(bundle, "onnx", ModelSettings(intra_op_spinning=spinning))
        out.append(engine.embed(images))
        engine.close()
    np.testing.assert_allclose(out[0], out[1], atol=1e-6)


def test_bench_client_frames_requests_and_responses() -> None:
    req = _http.multipart_request("http://127.0.0.1:8123", "/predict/image", "p.jpg", b"\xff\xd8x")
    head, _, body = req.partition(b"\r\n\r\n")
    assert head.startswith(b"POST /predict/image HTTP/1.1\r\nHost: 127.0.0.1:8123\r\n")
    assert f"Content-Length: {len(body)}".encode() in head
    assert b'name="files"; filename="p.jpg"' in body and b"\xff\xd8x" in body
    assert _http.parse_head(b"HTTP/1.1 200 OK\r\ncontent-length: 12\r\n\r\n") == (200, 12)
    for bad in (b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n", b"garbage\r\n\r\n"):
        with pytest.raises(_http.HttpError):
            _http.parse_head(bad)
    assert _http.check_predictions(b'{"results": [{"label": "x"}]}')["results"]
    with pytest.raises(_http.HttpError):
        _http.check_predictions(b'{"results": []}')


async def test_bench_client_reopens_a_connection_the_server_closed() -> None:
    served: list[bytes] = []

    async def one_request_then_close(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        head = await r.readuntil(b"\r\n\r\n")
        length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        served.append(await r.readexactly(length))
        body = b'{"results": [1]}'
        w.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        await w.drain()
        w.close()  # as a keep-alive timeout would

    server = await asyncio.start_server(one_request_then_close, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    conn = await _http.Connection.open(url)
    request = _http.multipart_request(url, "/predict/image", "p.jpg", b"\xff\xd8x")
    try:
        for _ in range(2):
            assert _http.check_predictions(await conn.send(request))["results"] == [1]
    finally:
        await conn.close()
        server.close()
    assert len(served) == 2
