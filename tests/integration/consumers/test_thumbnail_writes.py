"""Keyframe thumbnails (`consumers.thumbnails.Thumbnails`) against the real S3 server: written
through the lean PutObject (path-style store), not written again by a retried flush, a store
that refuses for good names each frame, and a store that does not answer is "not now"
(`SinkUnavailable`: the flush is retried). The faults are real clients of the real server (a
wrong secret, a port nothing listens on), not stand-ins for it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from consumers.thumbnails import Source, Thumbnails, source
from harclip.config import ObjectStoreSettings, Settings
from harclip.errors import SinkUnavailable
from harclip.io.objects import ObjectStore
from harclip.io.s3put import SignedPut
from producers.upload import image_jpeg
from tests.support.processes import free_port
from tests.support.scoped import Unique

MAX_PIXELS = 40_000_000
T = 1_764_000_000_000


@pytest.fixture
async def sources(
    store: ObjectStore, unique: Unique, sample_photos: list[Path]
) -> AsyncIterator[list[Source]]:
    jpeg = image_jpeg(sample_photos[0], 224, MAX_PIXELS)
    stream = f"cam-{unique.suffix}"
    yield [source(stream, T + i, f"f{i}", jpeg) for i in range(3)]
    await store.delete([o.key for o in await store.list(f"thumbs/{stream}/")])


@pytest.fixture
async def thumbs(settings: Settings) -> AsyncIterator[Thumbnails]:
    t = Thumbnails(settings.objects, MAX_PIXELS)
    await t.start()
    yield t
    await t.stop()


async def _swap_put(t: Thumbnails, s: ObjectStoreSettings) -> None:
    """The thumbnail writer's lean client replaced by one with the settings `s`."""
    assert t._put is not None
    await t._put.close()
    t._put = SignedPut(s)
    await t._put.start()


async def test_written_once_through_the_lean_put(
    thumbs: Thumbnails, sources: list[Source], store: ObjectStore
) -> None:
    assert thumbs._put is not None  # a path-style store: the lean PutObject
    assert await thumbs.write(sources) == {}
    assert thumbs.written == {s.frame_id: s.key for s in sources}
    for s in sources:
        body = await store.get(s.key)
        assert body is not None and body.data[:2] == b"\xff\xd8"
        assert body.content_type == "image/jpeg"
    # a retried flush writes only what is not written yet: a thumbnail removed meanwhile stays
    # away until the next batch (clear)
    await store.delete([sources[0].key])
    assert await thumbs.write(sources) == {}
    assert await store.get(sources[0].key) is None
    thumbs.clear()
    assert await thumbs.write(sources) == {}
    assert await store.get(sources[0].key) is not None


async def test_refused_for_good_names_each_frame(
    thumbs: Thumbnails, sources: list[Source], settings: Settings
) -> None:
    await _swap_put(
        thumbs, settings.objects.model_copy(update={"secret_key": SecretStr("not-the-secret")})
    )
    refused = await thumbs.write(sources)
    assert set(refused) == {s.frame_id for s in sources}
    assert all("object store refused its thumbnail" in r for r in refused.values())
    assert thumbs.written == {}


async def test_a_store_that_does_not_answer_is_not_now(
    thumbs: Thumbnails, sources: list[Source], settings: Settings
) -> None:
    away = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    await _swap_put(thumbs, settings.objects.model_copy(update={"url": away}))
    with pytest.raises(SinkUnavailable):
        await thumbs.write(sources)
    assert thumbs.written == {}
