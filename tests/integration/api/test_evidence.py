"""An event's evidence through the API and both client faces, over real Elasticsearch (the
event document) and the real S3 server (the objects): snapshot and thumbnail bytes, clip Range
requests (206, Content-Range, 416), 404 reasons, and the auth of the event reads."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import api.evidence
from harclip.client import AsyncClient, Client, NotFound, Unauthorized
from harclip.config import AuthSettings
from harclip.io import search
from harclip.io.es import make_es
from harclip.io.indices import ensure_templates
from harclip.io.keys import evidence_keys
from harclip.io.objects import ObjectStore
from harclip.messages import Event, Evidence, event_id
from harclip.services.process import free_port
from tests.support.api import T0, Serve, api_settings, serve_app
from tests.support.scoped import Unique


@pytest.fixture
async def objects(unique: Unique) -> AsyncIterator[ObjectStore]:
    """The shared bucket; the test's keys (under its unique stream ids) deleted afterwards."""
    store = ObjectStore(unique.settings.objects)
    await store.start()
    yield store
    for prefix in ("evidence/", "thumbs/"):
        keys = [o.key for o in await store.list(prefix) if unique.suffix in o.key]
        await store.delete(keys)
    await store.close()


def _event(stream_id: str, seq: int, evidence: Evidence | None) -> Event:
    at = T0 + seq * 100
    return Event(
        event_id=event_id(stream_id, "segment.end", seq), type="segment.end",
        stream_id=stream_id, label="clapping", start=at, end=at + 2000, first_seq=seq,
        last_seq=seq + 20, frames=20, emitted_at=at + 2050, evidence=evidence,
    )  # fmt: skip


async def _index(unique: Unique, items: list[Event]) -> None:
    s = unique.settings
    es = make_es(s.elasticsearch)
    try:
        await ensure_templates(es, s.elasticsearch)
        await search.index_events(es, s.elasticsearch, items)
        await es.indices.refresh(index=s.elasticsearch.events_index)
    finally:
        await es.close()


class Case:
    def __init__(self, ok: Event, pending: Event, expired: Event, jpeg: bytes, clip: bytes):
        self.ok, self.pending, self.expired = ok, pending, expired
        self.jpeg, self.clip = jpeg, clip


@pytest.fixture
async def case(
    unique: Unique, objects: ObjectStore, sample_photos: list[Path], sample_videos: list[Path]
) -> Case:
    stream = unique.name("cam")
    jpeg = sample_photos[0].read_bytes()
    thumb = sample_photos[1].read_bytes()
    clip = min(sample_videos, key=lambda p: p.stat().st_size).read_bytes()
    probe = _event(stream, 1, None)
    keys = evidence_keys(stream, T0, probe.event_id)
    await objects.put(keys.snapshot, jpeg, "image/jpeg")
    await objects.put(keys.thumbnail, thumb, "image/jpeg")
    await objects.put(keys.clip, clip, "video/mp4")
    ok = _event(stream, 1, Evidence(
        snapshot=keys.snapshot, thumbnail=keys.thumbnail, clip=keys.clip, frames=50,
        first_captured_at=T0 - 3000, last_captured_at=T0 + 4000,
    ))  # fmt: skip
    pending = _event(stream, 100, None)
    expired = _event(stream, 200, Evidence(missing="frames_expired"))
    await _index(unique, [ok, pending, expired])
    return Case(ok, pending, expired, jpeg, clip)


async def test_snapshot_thumbnail_and_whole_clip(serve: Serve, case: Case,
                                                 sample_photos: list[Path]) -> None:  # fmt: skip
    async with serve() as client:
        h = client._http
        r = await h.get(f"/events/{case.ok.event_id}/snapshot")
        assert r.status_code == 200
        assert r.headers["content-type"] == "image/jpeg"
        assert r.headers["accept-ranges"] == "bytes"
        assert r.content == case.jpeg
        assert await client.event_snapshot(case.ok.event_id) == case.jpeg
        assert await client.event_thumbnail(case.ok.event_id) == sample_photos[1].read_bytes()
        r = await h.get(f"/events/{case.ok.event_id}/clip")
        assert r.status_code == 200
        assert r.headers["content-type"] == "video/mp4"
        assert int(r.headers["content-length"]) == len(case.clip)
        assert r.content == case.clip


async def test_a_whole_clip_streams_in_chunks(serve: Serve, case: Case,
                                              monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.setattr(api.evidence, "CHUNK", 64 * 1024)  # the server runs in this process
    async with serve() as client:
        assert await client.event_clip(case.ok.event_id) == case.clip


async def test_clip_ranges(serve: Serve, case: Case, monkeypatch: pytest.MonkeyPatch) -> None:
    size = len(case.clip)
    eid = case.ok.event_id
    async with serve() as client:
        h = client._http
        r = await h.get(f"/events/{eid}/clip", headers={"Range": "bytes=100-1099"})
        assert r.status_code == 206
        assert r.headers["content-range"] == f"bytes 100-1099/{size}"
        assert r.headers["accept-ranges"] == "bytes"
        assert r.content == case.clip[100:1100]
        r = await h.get(f"/events/{eid}/clip", headers={"Range": "bytes=-500"})
        assert r.status_code == 206
        assert r.headers["content-range"] == f"bytes {size - 500}-{size - 1}/{size}"
        assert r.content == case.clip[-500:]
        r = await h.get(f"/events/{eid}/clip", headers={"Range": f"bytes={size}-"})
        assert r.status_code == 416
        assert r.headers["content-range"] == f"bytes */{size}"
        assert r.json()["error"]["code"] == "range_not_satisfiable"
        assert await client.event_clip(eid, 10, 19) == case.clip[10:20]
        monkeypatch.setattr(api.evidence, "CHUNK", 4096)  # an open range gets one chunk
        r = await h.get(f"/events/{eid}/clip", headers={"Range": "bytes=1000-"})
        assert r.status_code == 206
        assert r.headers["content-range"] == f"bytes 1000-5095/{size}"
        assert r.content == case.clip[1000:5096]


async def test_404_reasons(serve: Serve, case: Case) -> None:
    async with serve() as client:
        with pytest.raises(NotFound) as e:
            await client.event_snapshot("0" * 32)
        assert e.value.code == "not_found"
        with pytest.raises(NotFound) as e:
            await client.event_clip(case.pending.event_id)
        assert e.value.code == "pending"
        with pytest.raises(NotFound) as e:
            await client.event_thumbnail(case.expired.event_id)
        assert e.value.code == "frames_expired"
        assert "frames expired" in e.value.message


async def test_sync_client(serve: Serve, case: Case) -> None:
    async with serve() as client:
        url = client.url

        def read() -> tuple[bytes, bytes, bytes]:
            with Client(url) as c:
                eid = case.ok.event_id
                return c.event_snapshot(eid), c.event_thumbnail(eid), c.event_clip(eid, 0, 99)

        snap, thumb, part = await asyncio.to_thread(read)
    assert snap == case.jpeg
    assert thumb[:2] == b"\xff\xd8"
    assert part == case.clip[:100]


async def test_auth_as_for_events(serve: Serve, case: Case) -> None:
    keys = {"key-read": "read"}
    auth = AuthSettings(enabled=True, keys=keys)  # type: ignore[arg-type]
    async with serve(auth=auth) as anon:
        for kind in ("snapshot", "thumbnail", "clip"):
            assert (await anon._http.get(f"/events/{case.ok.event_id}/{kind}")).status_code == 401
        with pytest.raises(Unauthorized):
            await anon.event_snapshot(case.ok.event_id)
        async with AsyncClient(anon.url, "key-read") as reader:
            assert await reader.event_snapshot(case.ok.event_id) == case.jpeg


async def test_503_when_the_object_store_does_not_answer(
    unique: Unique, tiny_bundle: Path, case: Case
) -> None:
    port = free_port()  # nobody listens there
    objects = unique.settings.objects.model_copy(
        update={"url": f"http://127.0.0.1:{port}", "request_timeout_s": 1.0}
    )
    settings = api_settings(unique.settings, auth=AuthSettings()).model_copy(
        update={"objects": objects}
    )
    async with serve_app(settings, tiny_bundle) as client:
        r = await client._http.get(f"/events/{case.ok.event_id}/snapshot")
        assert r.status_code == 503
        assert r.json()["error"]["code"] == "unavailable"
        assert "object store" in r.json()["error"]["message"]
        # the event reads themselves still work
        assert (await client.events(stream_id=case.ok.stream_id)).items
