"""REST predict end to end over a real server: multipart, base64, URL (with the SSRF guard),
micro-batching of concurrent requests, and the error answers (413, 415, 422, JSON shape)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from harclip.client import BadRequest, NotFound
from tests.support.api import Serve, bomb_png


async def test_info_health_ready_metrics(serve: Serve) -> None:
    async with serve() as client:
        info = await client.info()
        assert info.service == "harclip-api" and info.engine == "onnx"
        assert len(info.labels) == 15 and info.auth is False
        http_ = client._http
        assert (await http_.get("/health")).json() == {"status": "ok"}
        ready = await http_.get("/ready")
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"] == {"model": "ok", "redis": "ok", "elasticsearch": "ok"}
        metrics = (await http_.get("/metrics")).text
        assert (
            'harclip_http_requests_total{method="GET",route="/health",status="200"} 1.0' in metrics
        )


async def test_multipart_base64_agree(serve: Serve, sample_photos: list[Path]) -> None:
    photos = sample_photos[:3]
    async with serve() as client:
        files = [("files", (p.name, p.read_bytes(), "application/octet-stream")) for p in photos]
        resp = await client._http.post("/predict/image", files=files, params={"top_k": 3})
        assert resp.status_code == 200, resp.text
        results = resp.json()["results"]
        assert [r["filename"] for r in results] == [p.name for p in photos]
        for r in results:
            assert len(r["predictions"]) == 3
            assert r["label"] == r["predictions"][0]["label"]
            assert 0 <= r["score"] <= 1
        b64 = await client.predict_base64(photos[0].read_bytes(), top_k=3)
        assert b64.label == results[0]["label"]
        assert b64.score == pytest.approx(results[0]["score"], abs=1e-5)
        single = await client.predict_from_image_path(photos[1])
        assert single.label == results[1]["label"]


async def test_concurrent_requests_share_batches(serve: Serve, sample_photos: list[Path]) -> None:
    datas = [p.read_bytes() for p in sample_photos[:32]]
    async with serve() as client:
        await client.predict_bytes(datas[0])  # warm-up
        results = await asyncio.gather(*(client.predict_bytes(d) for d in datas))
        assert len(results) == 32
        metrics = (await client._http.get("/metrics")).text
    count = _metric(metrics, "harclip_api_batch_size_count")
    assert count < 33, f"32 concurrent requests ran in {count - 1} batches: no micro-batching"


def _metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in metrics")


async def test_errors_are_json_and_4xx(serve: Serve, sample_photos: list[Path]) -> None:
    jpeg = sample_photos[0].read_bytes()
    async with serve(max_body_bytes=64 * 1024) as client:
        h = client._http
        cases = [
            (await h.post("/predict/image", files={"files": ("a.txt", b"hello world")}), 415),
            (
                await h.post("/predict/image", files={"files": ("t.jpg", jpeg[: len(jpeg) // 3])}),
                422,
            ),
            (await h.post("/predict/image", files={"files": ("bomb.png", bomb_png())}), 422),
            (await h.post("/predict", json={"image": "***"}), 422),
            (await h.post("/predict", json={}), 422),
            (await h.post("/predict", json={"image": "aGk=", "image_url": "http://x"}), 422),
            (
                await h.post(
                    "/predict", content=b"{not json", headers={"content-type": "application/json"}
                ),
                422,
            ),
            (await h.post("/predict/image"), 422),
            (await h.post("/predict/image", files={"files": ("big.jpg", b"\xff" * 100_000)}), 413),
            (
                await h.post(
                    "/predict",
                    content=_chunks(100_000),
                    headers={"content-type": "application/json"},
                ),
                413,
            ),
            (await h.get("/nope"), 404),
            (await h.delete("/labels"), 405),
        ]
        for resp, status in cases:
            assert resp.status_code == status, (resp.request.url, resp.text)
            err = resp.json()["error"]
            assert err["code"] and err["message"]
        bomb = (await h.post("/predict/image", files={"files": ("b.png", bomb_png())})).json()
        assert bomb["error"]["code"] == "image_too_large"
        with pytest.raises(BadRequest) as e:
            await client.predict_bytes(b"GIF89a-not-really")
        assert e.value.status == 422
        with pytest.raises(NotFound):
            await client.latest("no-such-stream")


async def _chunks(total: int) -> Iterator[bytes]:  # type: ignore[misc]
    for _ in range(total // 10_000):
        yield b" " * 10_000


PRIVATE_URLS = [
    "http://127.0.0.1/x.jpg", "http://127.1/x.jpg", "http://2130706433/x.jpg",
    "http://0x7f000001/x.jpg", "http://0177.0.0.1/x.jpg", "http://[::1]/x.jpg",
    "http://[::ffff:127.0.0.1]/x.jpg", "http://10.0.0.1/x.jpg", "http://172.16.0.1/x.jpg",
    "http://192.168.0.1/x.jpg", "http://169.254.169.254/latest/meta-data/", "http://[fe80::1]/",
    "http://[fc00::1]/", "http://0.0.0.0/", "http://localhost/x.jpg", "file:///etc/passwd",
    "http://localhost.localdomain/x.jpg",
]  # fmt: skip


async def test_url_fetch_refuses_private_addresses(serve: Serve, image_server: str) -> None:
    async with serve() as client:
        for url in [*PRIVATE_URLS, f"{image_server}/photo"]:
            resp = await client._http.post("/predict", json={"image_url": url})
            assert resp.status_code in (400, 422), (url, resp.text)
            if resp.status_code == 422:  # only a name that does not resolve here
                assert resp.json()["error"]["code"] == "url_fetch_failed", url
            else:
                assert resp.json()["error"]["code"] == "url_not_allowed", url


async def test_url_fetch_with_loopback_allowed_for_tests(serve: Serve, image_server: str) -> None:
    async with serve(url_allow_loopback=True, max_body_bytes=1024 * 1024) as client:
        ok = await client.predict_from_image_url(f"{image_server}/photo")
        assert ok.label
        via = await client.predict_from_image_url(f"{image_server}/to?u={image_server}/photo")
        assert via.label == ok.label
        h = client._http
        for target in ("http://169.254.169.254/latest/meta-data/", "http://10.0.0.1/x.jpg",
                       "http://[fd00::1]/x.jpg", "http://2886729729/x.jpg"):  # fmt: skip
            resp = await h.post("/predict", json={"image_url": f"{image_server}/to?u={target}"})
            assert resp.status_code == 400, (target, resp.text)
            assert resp.json()["error"]["code"] == "url_not_allowed"
        loop = await h.post("/predict", json={"image_url": f"{image_server}/loop"})
        assert loop.status_code == 422 and "redirects" in loop.json()["error"]["message"]
        big = await h.post("/predict", json={"image_url": f"{image_server}/big"})
        assert big.status_code == 413
        missing = await h.post("/predict", json={"image_url": f"{image_server}/missing"})
        assert missing.status_code == 422 and "404" in missing.json()["error"]["message"]


async def test_url_fetch_refuses_encoded_bodies_and_malformed_urls(
    serve: Serve, image_server: str
) -> None:
    """A body in stacked gzip layers (a few KB that inflate to 64 MiB) is refused for its
    Content-Encoding, not inflated up to the size cap; a URL with a tab is a 400, not a 500."""
    async with serve(url_allow_loopback=True, max_body_bytes=1024 * 1024) as client:
        h = client._http
        for path in ("/gzip2", "/gzip"):
            resp = await h.post("/predict", json={"image_url": f"{image_server}{path}"})
            assert resp.status_code == 422, (path, resp.text)
            err = resp.json()["error"]
            assert err["code"] == "url_fetch_failed" and "Content-Encoding" in err["message"]
        tab = await h.post("/predict", json={"image_url": f"{image_server}/ph\toto"})
        assert tab.status_code == 400 and tab.json()["error"]["code"] == "url_not_allowed"


async def test_openapi_documents_every_route(serve: Serve) -> None:
    async with serve() as client:
        doc = (await client._http.get("/openapi.json")).json()
    paths = set(doc["paths"])
    assert {"/", "/health", "/ready", "/metrics", "/predict", "/predict/image", "/streams",
            "/streams/{stream_id}/latest", "/streams/{stream_id}/frame",
            "/streams/{stream_id}/history", "/search", "/labels"} <= paths  # fmt: skip
    schemas = doc["components"]["schemas"]
    assert schemas["PredictRequest"].get("examples") and schemas["PredictResponse"].get("examples")
    assert httpx.codes.OK
