"""Every public method of both client faces, `AsyncClient` and the blocking `Client`, against a
real API over real Redis, Elasticsearch and Kafka: each returns its `harclip.wire` type, and each
error carries the HTTP status the server sent (over HTTP and in WebSocket `error` messages)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Literal

import pytest

from harclip.client import AsyncClient, BadRequest, Client, NotFound, Subscription, SyncSubscription
from harclip.model.bundle import Bundle
from harclip.wire import (
    Ack,
    LabelSet,
    Prediction,
    PredictionMessage,
    PredictionPage,
    PredictResponse,
    SearchResponse,
    ServiceInfo,
    StreamList,
)
from tests.support.api import Serve, index_history, prediction, wait_subscribed, write_redis
from tests.support.scoped import Unique

Kind = Literal["async", "sync"]


class Face:
    """One client face, called from this (async) test: the blocking one runs in a thread, since
    the server under test runs on this event loop."""

    def __init__(self, kind: Kind, url: str, api_key: str | None) -> None:
        self.kind = kind
        self.client: AsyncClient | Client = (
            AsyncClient(url, api_key) if kind == "async" else Client(url, api_key)
        )

    async def __call__(self, method: str, *args: Any, **kwargs: Any) -> Any:
        fn = getattr(self.client, method)
        if self.kind == "async":
            return await fn(*args, **kwargs)
        return await asyncio.to_thread(fn, *args, **kwargs)

    async def take(self, sub: Subscription | SyncSubscription, n: int) -> list[PredictionMessage]:
        """The next `n` predictions of `sub`."""
        out: list[PredictionMessage] = []
        if isinstance(sub, Subscription):
            async for m in sub:
                out.append(m)
                if len(out) == n:
                    break
            return out

        def run() -> list[PredictionMessage]:
            for m in sub:
                out.append(m)
                if len(out) == n:
                    break
            return out

        return await asyncio.to_thread(run)

    async def close(self, sub: Subscription | SyncSubscription) -> None:
        if isinstance(sub, Subscription):
            await sub.close()
        else:
            sub.close()

    async def aclose(self) -> None:
        if isinstance(self.client, AsyncClient):
            await self.client.aclose()
        else:
            self.client.close()


@asynccontextmanager
async def face(kind: Kind, api: AsyncClient) -> AsyncIterator[Face]:
    f = Face(kind, api.url, api.api_key)
    try:
        yield f
    finally:
        await f.aclose()


FACES: list[Kind] = ["async", "sync"]


@pytest.mark.parametrize("kind", FACES)
async def test_predict_info_labels(
    serve: Serve, kind: Kind, sample_photos: list[Path], image_server: str
) -> None:
    photo = sample_photos[0]
    api_settings = {"url_allow_loopback": True, "max_body_bytes": 1024 * 1024}
    async with serve(**api_settings) as api, face(kind, api) as c:
        first = await c("predict_bytes", photo.read_bytes(), "a.jpg", 3)
        assert isinstance(first, PredictResponse) and first.filename == "a.jpg"
        assert len(first.predictions) == 3 and first.label == first.predictions[0].label
        for other in (
            await c("predict_from_image_path", photo, top_k=3),
            await c("predict_base64", photo.read_bytes(), top_k=3),
            await c("predict_from_image_url", f"{image_server}/photo", top_k=3),
        ):
            assert isinstance(other, PredictResponse) and other.label == first.label
            assert other.score == pytest.approx(first.score, abs=1e-5)
        info = await c("info")
        assert isinstance(info, ServiceInfo) and info.model == first.model
        labels = await c("labels")
        assert isinstance(labels, LabelSet) and labels.labels == info.labels
        assert labels.version == info.model.head_version

        with pytest.raises(BadRequest) as e:
            await c("predict_bytes", b"hello, not an image")
        assert (e.value.status, e.value.code) == (415, "unsupported_media_type")
        with pytest.raises(BadRequest) as e:
            await c("predict_from_image_url", "http://10.0.0.1/x.jpg")
        assert (e.value.status, e.value.code) == (400, "url_not_allowed")
        with pytest.raises(BadRequest) as e:
            await c("predict_base64", b"")
        assert e.value.status == 422


async def _index(unique: Unique, bundle: Path, preds: list[Prediction]) -> None:
    encoder = Bundle.load(bundle).text_encoder()
    vectors = encoder.encode(["a photo of a person riding a bike."])  # [1, D]
    await index_history(unique.settings.elasticsearch, bundle, [(p, vectors[0]) for p in preds])


@pytest.mark.parametrize("kind", FACES)
async def test_reads(
    serve: Serve, unique: Unique, kind: Kind, sample_photos: list[Path], tiny_bundle: Path
) -> None:
    jpeg = sample_photos[0].read_bytes()
    preds = [prediction("cam-r", i, "cycling", 0.5 + 0.01 * i) for i in range(5)]
    await write_redis(unique, preds, jpeg)
    await _index(unique, tiny_bundle, preds)
    async with serve() as api, face(kind, api) as c:
        streams = await c("streams", limit=10)
        assert isinstance(streams, StreamList)
        assert [(s.stream_id, s.last_seen) for s in streams.streams] == [
            ("cam-r", preds[-1].captured_at)
        ]
        assert (await c("streams", since_ms=preds[-1].captured_at + 1)).streams == []
        latest = await c("latest", "cam-r")
        assert isinstance(latest, Prediction) and latest == preds[-1]
        assert await c("frame", "cam-r") == jpeg

        page = await c("history", "cam-r", size=3)
        assert isinstance(page, PredictionPage) and page.items == preds[:1:-1] and page.next
        rest = await c("history", "cam-r", size=3, cursor=page.next)
        assert rest.items == preds[1::-1] and rest.next is None
        window = await c("history", "cam-r", start_ms=preds[1].captured_at,
                         end_ms=preds[3].captured_at, label="cycling", min_score=0.5)  # fmt: skip
        assert window.items == [preds[2], preds[1]]

        found = await c("search", "riding a bike", k=2, stream_id="cam-r", label="cycling",
                        min_score=0.52, start_ms=preds[0].captured_at, end_ms=None)  # fmt: skip
        assert isinstance(found, SearchResponse) and found.query == "riding a bike"
        assert len(found.hits) == 2 and all(h.prediction.score >= 0.52 for h in found.hits)

        with pytest.raises(NotFound) as missing:
            await c("latest", "no-such-stream")
        assert (missing.value.status, missing.value.code) == (404, "not_found")
        with pytest.raises(NotFound):
            await c("frame", "no-such-stream")
        with pytest.raises(BadRequest) as bad:
            await c("history", "cam-r", cursor="nope")
        assert (bad.value.status, bad.value.code) == (422, "invalid_cursor")


@pytest.mark.parametrize("kind", FACES)
async def test_subscribe_ingest_set_labels(
    serve: Serve, unique: Unique, kind: Kind, sample_photos: list[Path]
) -> None:
    async with serve() as api, face(kind, api) as c:
        sub = c.client.subscribe("cam-s")
        receiving = asyncio.ensure_future(c.take(sub, 3))
        await wait_subscribed(sub)
        batch1 = [prediction("cam-s", i, "running", 0.5) for i in range(3)]
        await write_redis(unique, batch1)
        got = await receiving
        assert [m.prediction for m in got] == batch1
        await c.close(sub)
        assert sub.positions == {"cam-s": got[-1].id}

        batch2 = [prediction("cam-s", i, "eating", 0.5) for i in range(3, 5)]
        await write_redis(unique, batch2)
        resumed = c.client.subscribe("cam-s", after=got[-1].id)
        assert [m.prediction for m in await c.take(resumed, 2)] == batch2
        await c.close(resumed)
        everything = c.client.subscribe(None, after={"cam-s": got[0].id})
        assert [m.prediction.seq for m in await c.take(everything, 4)] == [1, 2, 3, 4]
        await c.close(everything)

        # An error message on the socket raises the error with the status the server sent.
        with pytest.raises(BadRequest) as e:
            await c.take(c.client.subscribe("cam-s", after="not-an-entry-id"), 1)
        assert (e.value.status, e.value.code) == (422, "invalid_position")

        frames: Iterable[bytes] = [p.read_bytes() for p in sample_photos[:2]]
        acks = await c("ingest", "cam-s", frames)
        assert all(isinstance(a, Ack) for a in acks) and [a.seq for a in acks] == [0, 1]
        assert len({a.frame_id for a in acks}) == 2
        with pytest.raises(BadRequest) as e:
            await c("ingest", "cam-s", [b"hello, not an image"])
        assert (e.value.status, e.value.code) == (415, "unsupported_media_type")

        new = await c("set_labels", ["cycling", "running"], {"running": ["a person running."]})
        assert isinstance(new, LabelSet) and new.labels == ["cycling", "running"]
        assert new.prompts["running"] == ["a person running."]
        assert await c("labels") == new
        with pytest.raises(BadRequest) as e:
            await c("set_labels", ["cycling"], {"sleeping": ["a person asleep."]})
        assert (e.value.status, e.value.code) == (422, "invalid_labels")
