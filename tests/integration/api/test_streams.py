"""Live reads, history, text search and WebSocket subscriptions over real Redis and
Elasticsearch; predictions are written with the same store/search calls the worker uses."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest

from harclip.client import BadRequest, NotFound
from harclip.model.bundle import Bundle
from harclip.wire import Dropped, PredictionMessage, parse_server_message
from tests.support.api import (
    T0,
    Serve,
    bomb_png,
    index_history,
    prediction,
    wait_subscribed,
    write_redis,
)
from tests.support.scoped import Unique


async def test_streams_latest_frame(
    serve: Serve, unique: Unique, sample_photos: list[Path]
) -> None:
    jpeg = sample_photos[0].read_bytes()
    preds = [prediction("cam-a", i, "running", 0.5) for i in range(3)] + [
        prediction("cam-b", 0, "eating", 0.9)
    ]
    await write_redis(unique, preds[:3], jpeg)
    await write_redis(unique, preds[3:])
    async with serve() as client:
        streams = {s.stream_id: s.last_seen for s in (await client.streams()).streams}
        assert set(streams) == {"cam-a", "cam-b"}
        assert (await client.latest("cam-a")).frame_id == preds[2].frame_id
        assert await client.frame("cam-a") == jpeg
        missing = await client._http.get("/streams/cam-b/frame")
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


async def test_history_and_text_search(serve: Serve, unique: Unique, tiny_bundle: Path) -> None:
    bundle = Bundle.load(tiny_bundle)
    encoder = bundle.text_encoder()
    texts = ["a photo of a person riding a bike.", "a photo of a person sleeping."]
    vectors = encoder.encode(texts)  # [2, D]
    labels = ["cycling", "sleeping"]
    preds = [prediction("cam-h", i, labels[i % 2], 0.3 + 0.05 * i) for i in range(10)]
    items = [(p, vectors[i % 2]) for i, p in enumerate(preds)]
    await index_history(unique.settings.elasticsearch, tiny_bundle, items)
    async with serve() as client:
        page = await client.history("cam-h", size=4)
        assert [p.seq for p in page.items] == [9, 8, 7, 6] and page.next
        rest = await client.history("cam-h", size=100, cursor=page.next)
        assert [p.seq for p in rest.items] == [5, 4, 3, 2, 1, 0] and rest.next is None
        cycling = await client.history("cam-h", label="cycling", min_score=0.5, size=100)
        assert [p.seq for p in cycling.items] == [8, 6, 4]
        window = await client.history("cam-h", start_ms=T0 + 200, end_ms=T0 + 500)
        assert sorted(p.seq for p in window.items) == [2, 3, 4]
        hits = (await client.search("a photo of a person riding a bike.", k=5)).hits
        assert hits and all(h.prediction.label == "cycling" for h in hits)
        assert hits[0].similarity == pytest.approx(1.0, abs=2e-2)  # int8-quantised HNSW
        filtered = await client.search("riding a bike", k=10, label="sleeping", stream_id="cam-h")
        assert {h.prediction.label for h in filtered.hits} == {"sleeping"}
        bad = await client._http.get("/streams/cam-h/history", params={"cursor": "nope"})
        assert bad.status_code == 422


async def _take(it: AsyncIterator[PredictionMessage], n: int) -> list[PredictionMessage]:
    out = []
    async for u in it:
        out.append(u)
        if len(out) == n:
            break
    return out


async def test_search_by_example_from_a_frame_or_an_upload(
    serve: Serve, unique: Unique, tiny_bundle: Path, sample_photos: list[Path]
) -> None:
    from harclip.engines import create_engine
    from harclip.io import search
    from harclip.model.preprocess import decode_image

    bundle = Bundle.load(tiny_bundle)
    photos = [sample_photos[i].read_bytes() for i in (0, 100, 200)]
    engine = create_engine(bundle, "onnx", unique.settings.model)
    try:
        pixels = [decode_image(d, bundle.manifest.image_size, max_pixels=10**7) for d in photos]
        vectors = engine.embed(np.stack(pixels))  # [3, D], as the API embeds an upload
    finally:
        engine.close()
    keys = [prediction("cam-x", i, "running", 0.5) for i in range(3)]
    follower = prediction("cam-x", 3, "running", 0.5)  # stands behind the last keyframe
    behind_last = search.Indexed(follower, None, keys[2].frame_id)
    items = list(zip(keys, vectors, strict=True))
    await index_history(unique.settings.elasticsearch, tiny_bundle, items, extra=[behind_last])
    async with serve() as client:
        by_frame = await client.search_similar(keys[0].frame_id, k=3)
        assert by_frame.hits[0].prediction == keys[0] and by_frame.query.startswith("frame:")
        assert by_frame.space == f"{bundle.manifest.name}-v1-{bundle.manifest.embed_dim}d"
        behind = await client.search_similar(follower.frame_id, k=1)
        assert behind.hits[0].prediction == keys[2] and behind.hits[0].frames == 2
        upload = await client.search_similar(image=photos[1], filename="b.jpg", k=3)
        assert upload.hits[0].prediction == keys[1] and upload.hits[0].similarity > 0.98
        assert upload.query == "image:b.jpg"
        with pytest.raises(NotFound, match="not in the history of model"):
            await client.search_similar("no-such-frame")
        with pytest.raises(BadRequest) as bad:
            await client.search_similar(image=b"\x89PNG\r\n\x1a\n" + b"\x00" * 100)
        assert bad.value.status in (415, 422)
        with pytest.raises(BadRequest, match="exactly one"):
            await client.search_similar()
        with pytest.raises(BadRequest) as bad:  # 50,000 x 50,000 pixels claimed by its header
            await client.search_similar(image=bomb_png(), filename="bomb.png")
        assert (bad.value.status, bad.value.code) == (422, "image_too_large")
    async with serve(max_body_bytes=4096) as small:  # an upload over the body limit
        with pytest.raises(BadRequest) as bad:
            await small.search_similar(image=photos[1], filename="big.jpg")
        assert bad.value.status == 413


async def test_subscribe_resume_without_gap(serve: Serve, unique: Unique) -> None:
    async with serve() as client:
        sub = client.subscribe("cam-ws")
        it = aiter(sub)
        first = asyncio.ensure_future(_take(it, 3))
        # The subscription starts "from now": write once the server holds our position.
        await wait_subscribed(sub)
        batch1 = [prediction("cam-ws", i, "running", 0.5) for i in range(3)]
        await write_redis(unique, batch1)
        got = await first
        assert [u.prediction.frame_id for u in got] == [p.frame_id for p in batch1]
        await sub.close()
        last = got[-1].id
        # While disconnected, more predictions arrive; a resumed subscription gets all of them.
        batch2 = [prediction("cam-ws", i, "eating", 0.5) for i in range(3, 8)]
        await write_redis(unique, batch2)
        resumed = client.subscribe("cam-ws", after=last)
        again = await _take(aiter(resumed), 5)
        assert [u.prediction.frame_id for u in again] == [p.frame_id for p in batch2]
        await resumed.close()
        # All streams, resumed per stream.
        everything = client.subscribe(None, after={"cam-ws": got[0].id})
        all_got = await _take(aiter(everything), 7)
        assert [u.prediction.seq for u in all_got] == list(range(1, 8))
        await everything.close()


async def test_slow_subscriber_gets_oldest_dropped(serve: Serve, unique: Unique) -> None:
    """600 entries arrive at once; a 4-message queue keeps the newest and reports the rest."""
    from websockets.asyncio.client import connect

    n = 600
    await write_redis(unique, [prediction("cam-slow", i, "running", 0.5) for i in range(n)])
    async with serve(ws_queue_size=4) as client:
        url = client.ws_url("/ws/streams/cam-slow", {"after": "0-0"})
        messages = []
        async with connect(url) as ws:
            while not messages or messages[-1].get("prediction", {}).get("seq") != n - 1:
                messages.append(json.loads(await ws.recv()))
        metrics = (await client._http.get("/metrics")).text
    seqs = [m["prediction"]["seq"] for m in messages if m["type"] == "prediction"]
    dropped = sum(m["count"] for m in messages if m["type"] == "dropped")
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert dropped > 0 and dropped + len(seqs) == n
    assert f"harclip_ws_messages_dropped_total {float(dropped)}" in metrics


def test_outbox_drops_oldest_and_reports() -> None:
    from api.feeds import Outbox

    preds = [prediction("cam-box", i, "running", 0.5) for i in range(10)]

    async def run() -> list[object]:
        box = Outbox(3, "predictions")
        for i, p in enumerate(preds):
            box.put(PredictionMessage(stream_id="cam-box", id=f"{i}-0", prediction=p).to_json())
        return [parse_server_message(await box.get(0.01)) for _ in range(4)]

    got = asyncio.run(run())
    report = "7 predictions dropped: the client reads too slowly"
    assert got[0] == Dropped(count=7, total=7, message=report)
    assert [m.prediction.seq for m in got[1:] if isinstance(m, PredictionMessage)] == [7, 8, 9]
