"""harclip.io.objects against the real S3 server that `harclip services up` runs (`objects`):
put/get/range/head/list/delete, idempotent writes, missing objects, the bucket made once, and a
stopped server (a private one, on its own port and state folder) as `SinkUnavailable`."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from harclip.config import ObjectStoreSettings, ServicesSettings, Settings
from harclip.errors import ReadUnavailable, SinkUnavailable
from harclip.io.keys import evidence_keys, thumb_key
from harclip.io.objects import ObjectStore, RangeNotSatisfiable
from harclip.services.base import State
from harclip.services.objects import ObjectStoreService
from harclip.services.process import free_port

JPEG = "image/jpeg"


async def test_put_get_head(store: ObjectStore, prefix: str) -> None:
    data = bytes(range(256)) * 40  # 10240 bytes
    await store.put(prefix + "a.jpg", data, JPEG)
    info = await store.head(prefix + "a.jpg")
    assert info is not None
    assert (info.key, info.size, info.content_type) == (prefix + "a.jpg", len(data), JPEG)
    assert info.etag and '"' not in info.etag
    body = await store.get(prefix + "a.jpg")
    assert body is not None
    assert (body.data, body.content_type) == (data, JPEG)
    assert (body.total_size, body.start, body.end) == (len(data), 0, len(data) - 1)


async def test_byte_ranges(store: ObjectStore, prefix: str) -> None:
    data = b"0123456789"
    await store.put(prefix + "clip.mp4", data, "video/mp4")
    cases = {(2, 5): b"2345", (7, None): b"789", (8, 100): b"89", (0, 0): b"0", (9, 9): b"9"}
    for (start, end), want in cases.items():
        body = await store.get(prefix + "clip.mp4", start, end)
        assert body is not None
        assert body.data == want
        assert (body.start, body.end, body.total_size) == (start, start + len(want) - 1, 10)
        assert body.content_type == "video/mp4"
    with pytest.raises(RangeNotSatisfiable) as past:
        await store.get(prefix + "clip.mp4", 10)
    assert (past.value.start, past.value.total_size) == (10, 10)
    with pytest.raises(ValueError, match="bad byte range"):
        await store.get(prefix + "clip.mp4", 5, 4)


async def test_put_again_overwrites(store: ObjectStore, prefix: str) -> None:
    key = prefix + "ev.jpg"
    await store.put(key, b"first", JPEG)
    await store.put(key, b"first", JPEG)  # a replay: the same object
    assert [(o.key, o.size) for o in await store.list(prefix)] == [(key, 5)]
    await store.put(key, b"second!", "image/png")
    body = await store.get(key)
    assert body is not None and (body.data, body.content_type) == (b"second!", "image/png")


async def test_evidence_keys_of_odd_ids_round_trip(store: ObjectStore, prefix: str) -> None:
    """Valid stream ids such as '..' or 'lobby #2' (and any event id) stay inside the prefix."""
    at = 1_772_668_799_500
    keys = [
        prefix + evidence_keys("..", at, "ev/1").snapshot,
        prefix + evidence_keys("lobby #2", at, "..").clip,
        prefix + evidence_keys("a%2Fb", at, "e").thumbnail,
        prefix + thumb_key("cam:1", at, "f 1"),
    ]
    for key in keys:
        await store.put(key, key.encode(), JPEG)
    assert sorted(o.key for o in await store.list(prefix)) == sorted(keys)
    for key in keys:
        body = await store.get(key)
        assert body is not None and body.data == key.encode()


async def test_a_missing_object_is_none(store: ObjectStore, prefix: str) -> None:
    assert await store.head(prefix + "none.jpg") is None
    assert await store.get(prefix + "none.jpg") is None
    assert await store.get(prefix + "none.jpg", 5, 9) is None
    assert await store.list(prefix) == []
    assert await store.delete([prefix + "none.jpg"]) == 0


async def test_list_every_page_and_delete(settings: Settings, prefix: str) -> None:
    """1 100 objects: more than one listing page (1 000) and one DeleteObjects batch."""
    store = ObjectStore(settings.objects)
    await store.start()
    try:
        keys = [f"{prefix}day/{i:05d}.thumb.jpg" for i in range(1100)]
        for i in range(0, len(keys), 50):
            await asyncio.gather(*(store.put(k, k.encode(), JPEG) for k in keys[i : i + 50]))
        await store.put(prefix + "other/x.jpg", b"x", JPEG)
        listed = await store.list(prefix + "day/")
        assert [o.key for o in listed] == keys
        assert all(o.size == len(o.key) for o in listed)
        assert await store.delete([*keys, prefix + "day/none.jpg", keys[0]]) == len(keys)
        assert await store.list(prefix + "day/") == []
        assert [o.key for o in await store.list(prefix)] == [prefix + "other/x.jpg"]
    finally:
        await store.close()


async def test_start_creates_the_bucket_once(settings: Settings, prefix: str) -> None:
    bucket = f"{prefix.rstrip('/')}-bucket"
    s = ObjectStore(settings.objects.model_copy(update={"bucket": bucket}))
    await s.start()
    try:
        await s.put("kept.jpg", b"k", JPEG)
        await s.start()  # the bucket exists: nothing happens to it
        other = ObjectStore(settings.objects.model_copy(update={"bucket": bucket}))
        await other.start()
        await other.close()
        assert [o.key for o in await s.list("")] == ["kept.jpg"]
    finally:
        await s.delete(["kept.jpg"])
        await s.close()
        _remove_bucket(settings.objects, bucket)


def _remove_bucket(objects: ObjectStoreSettings, bucket: str) -> None:
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=objects.url,
        region_name=objects.region,
        aws_access_key_id=objects.access_key,
        aws_secret_access_key=objects.secret_key.get_secret_value(),
    )
    client.delete_bucket(Bucket=bucket)
    client.close()


# ---- a private server, stopped ---------------------------------------------------------------


@pytest.fixture
def private(settings: Settings, tmp_path: Path) -> Iterator[ObjectStoreService]:
    """A second versitygw on a port of its own, with a temporary state folder (the binary from
    the shared cache); never the shared server."""
    port = free_port()  # nothing listens there now
    services = ServicesSettings(
        state_dir=tmp_path / "state",
        cache_dir=settings.services.downloads.resolve(),
        start_timeout_s=settings.services.start_timeout_s,
        versitygw_version=settings.services.versitygw_version,
    )
    objects = settings.objects.model_copy(update={"url": f"http://127.0.0.1:{port}"})
    svc = ObjectStoreService(objects, services)
    yield svc
    svc.down()


async def test_a_stopped_server_is_unavailable(
    settings: Settings, private: ObjectStoreService
) -> None:
    assert private.up().state is State.STARTED
    assert private.up().state is State.RUNNING  # a second `up` finds it
    objects = settings.objects.model_copy(update={"url": private.status().address})
    store = ObjectStore(objects.model_copy(update={"request_timeout_s": 2.0}))
    await store.start()
    try:
        await store.put("a.jpg", b"a", JPEG)
        assert private.down().state is State.STOPPED
        with pytest.raises(SinkUnavailable, match="object store put"):
            await store.put("b.jpg", b"b", JPEG)
        with pytest.raises(ReadUnavailable, match="object store get"):
            await store.get("a.jpg")
        assert private.up().state is State.STARTED  # back: the object is still there
        body = await store.get("a.jpg")
        assert body is not None and body.data == b"a"
    finally:
        await store.close()
