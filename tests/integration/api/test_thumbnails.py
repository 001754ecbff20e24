"""Keyframe thumbnails with a real worker: each keyframe's ~160 px JPEG is in the object store
(written before its Elasticsearch document), a search hit links it as `thumbnail`, and the API
serves it (GET /frames/{id}/thumbnail, both client faces). With the object store turned off the
worker writes none and fails nothing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from harclip.client import Client, NotFound
from harclip.config import Settings
from harclip.io.es import make_es
from harclip.io.keys import thumb_key
from harclip.io.objects import ObjectStore
from harclip.thumbnail import THUMB_SIDE
from tests.support.api import Serve
from tests.support.scoped import Unique
from tests.support.worker import predicted, running_worker, worker_settings


async def _refresh(s: Settings) -> None:
    es = make_es(s.elasticsearch)
    try:
        await es.indices.refresh(index=s.elasticsearch.predictions_index)
    finally:
        await es.close()


@pytest.fixture
async def objects(unique: Unique) -> AsyncIterator[ObjectStore]:
    store = ObjectStore(unique.settings.objects)
    await store.start()
    yield store
    await store.delete([o.key for o in await store.list("thumbs/") if unique.suffix in o.key])
    await store.close()


async def test_keyframe_thumbnails(
    serve: Serve, unique: Unique, tiny_bundle: Path, objects: ObjectStore,
    sample_photos: list[Path],
) -> None:  # fmt: skip
    photos = sample_photos[::100]  # different classes: several keyframes
    stream = unique.name("cam")
    settings = worker_settings(unique.settings, tiny_bundle, max_age_ms=600_000)
    async with running_worker(settings) as worker, serve() as client:
        acks = await client.ingest(stream, [p.read_bytes() for p in photos])
        await worker.wait_for(lambda: predicted(worker) >= len(acks), 60)
        await _refresh(unique.settings)
        found = await client.search("a person", k=len(photos), stream_id=stream)
        assert found.hits
        for hit in found.hits:  # every hit is a keyframe: each has its thumbnail
            p = hit.prediction
            assert hit.thumbnail == f"/frames/{p.frame_id}/thumbnail"
            info = await objects.head(thumb_key(stream, p.captured_at, p.frame_id))
            assert info is not None
            assert info.content_type == "image/jpeg"
            assert info.size < 20_000
            jpeg = await client.frame_thumbnail(p.frame_id)
            assert len(jpeg) == info.size
            image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
            assert max(image.shape[:2]) == THUMB_SIDE
            r = await client._http.get(hit.thumbnail)
            assert r.status_code == 200
            assert r.headers["content-type"] == "image/jpeg"
        # every frame (keyframe or not) answers its keyframe's thumbnail
        first = acks[0].frame_id

        def read() -> bytes:
            with Client(client.url) as c:
                return c.frame_thumbnail(first)

        sync = await asyncio.to_thread(read)
        assert sync[:2] == b"\xff\xd8"
        with pytest.raises(NotFound) as e:
            await client.frame_thumbnail("no-such-frame")
        assert e.value.code == "not_found"


async def test_no_thumbnails_when_the_store_is_off(
    serve: Serve, unique: Unique, tiny_bundle: Path, sample_photos: list[Path]
) -> None:
    photos = sample_photos[::200]
    stream = unique.name("cam")
    base = worker_settings(unique.settings, tiny_bundle, max_age_ms=600_000)
    off = base.model_copy(update={"objects": base.objects.model_copy(update={"enabled": False})})
    async with running_worker(off) as worker, serve() as client:
        acks = await client.ingest(stream, [p.read_bytes() for p in photos])
        await worker.wait_for(lambda: predicted(worker) >= len(acks), 60)
        await _refresh(unique.settings)
        found = await client.search("a person", k=len(photos), stream_id=stream)
        assert found.hits
        assert all(h.thumbnail is None for h in found.hits)
        with pytest.raises(NotFound) as e:
            await client.frame_thumbnail(acks[0].frame_id)
        assert e.value.code == "no_thumbnail"
