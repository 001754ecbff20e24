"""The whole path with a real worker: frames ingested over the WebSocket reach the worker through
Kafka, their predictions come back on a subscription (also after a disconnect, without a gap),
history and text search find them in Elasticsearch, and a label change reaches predictions."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from consumers.worker import Worker
from harclip.client import AsyncClient, Subscription
from harclip.config import ElasticsearchSettings
from harclip.io.es import make_es
from harclip.wire import PredictionMessage
from tests.support.api import Serve, wait_subscribed
from tests.support.scoped import Unique
from tests.support.worker import predicted, running_worker, worker_settings


@pytest.fixture
async def worker(unique: Unique, tiny_bundle: Path) -> AsyncIterator[Worker]:
    """A worker in this process (so the test can wait on its own counters), on the test's names;
    frames sent while it still joins its group must not be dropped as too old."""
    async with running_worker(
        worker_settings(unique.settings, tiny_bundle, max_age_ms=600_000)
    ) as w:
        yield w


async def _refresh(es_settings: ElasticsearchSettings) -> None:
    es = make_es(es_settings)
    try:
        await es.indices.refresh(index=es_settings.predictions_index)
    finally:
        await es.close()


async def _take(it: AsyncIterator[PredictionMessage], n: int) -> list[PredictionMessage]:
    out: list[PredictionMessage] = []
    async for u in it:
        out.append(u)
        if len(out) == n:
            break
    return out


async def _ingest_and_receive(
    client: AsyncClient, sub: Subscription, photos: list[Path]
) -> tuple[list[str], list[PredictionMessage]]:
    it = aiter(sub)
    receiving = asyncio.ensure_future(_take(it, len(photos)))
    await wait_subscribed(sub)
    acks = await client.ingest("cam-e2e", [p.read_bytes() for p in photos])
    assert [a.seq for a in acks] == list(range(len(photos)))
    return [a.frame_id for a in acks], await receiving


async def test_ingest_subscribe_resume_history_search_labels(
    serve: Serve, unique: Unique, worker: Worker, sample_photos: list[Path]
) -> None:
    photos = sample_photos[::60]  # one or two of each class
    async with serve() as client:
        sub = client.subscribe("cam-e2e")
        ids, got = await _ingest_and_receive(client, sub, photos[:4])
        assert len(set(ids)) == 4
        assert [u.prediction.frame_id for u in got] == ids  # per-stream order is kept
        await sub.close()

        # Disconnected: more frames arrive; resuming after the last entry misses none.
        more = [
            a.frame_id
            for a in await client.ingest("cam-e2e", [p.read_bytes() for p in photos[4:7]])
        ]
        resumed = client.subscribe("cam-e2e", after=got[-1].id)
        again = await _take(aiter(resumed), 3)
        assert [u.prediction.frame_id for u in again] == more
        await resumed.close()

        # History and text search see every indexed frame. The sinks are flushed concurrently, so
        # a prediction seen in Redis may still be on its way into Elasticsearch: the worker counts
        # a frame once every sink acknowledged it.
        await worker.wait_for(lambda: predicted(worker) >= len(ids + more), 60)
        await _refresh(unique.settings.elasticsearch)
        page = await client.history("cam-e2e", size=100)
        assert {p.frame_id for p in page.items} == set(ids + more)
        found = await client.search("a photo of a person riding a bike.", k=7, stream_id="cam-e2e")
        # keyframes, each standing for itself and the frames after it: together, every frame
        assert {h.prediction.frame_id for h in found.hits} <= set(ids + more)
        assert sum(h.frames for h in found.hits) == len(ids + more)
        assert (await client.latest("cam-e2e")).frame_id == more[-1]

        # A new label set reaches the worker's predictions.
        new = await client.set_labels(["cycling", "sleeping", "skateboarding"])
        assert new.labels == ["cycling", "sleeping", "skateboarding"]
        assert new.version > got[0].prediction.model.head_version
        # The worker switches between batches once it has read harclip.control: send frames one
        # at a time until a prediction carries the new head, then every later one must.
        sub2 = client.subscribe("cam-e2e")
        received: asyncio.Queue[PredictionMessage] = asyncio.Queue()

        async def pump() -> None:
            async for u in sub2:
                await received.put(u)

        pumping = asyncio.ensure_future(pump())
        await wait_subscribed(sub2)
        versions = []
        for i in range(40):
            await client.ingest("cam-e2e", [photos[i % len(photos)].read_bytes()])
            u = await received.get()
            versions.append(u.prediction.model.head_version)
            if versions[-1] == new.version:
                assert u.prediction.label in new.labels
                break
        assert versions[-1] == new.version, versions
        await client.ingest("cam-e2e", [photos[0].read_bytes()])
        assert (await received.get()).prediction.model.head_version == new.version
        await sub2.close()
        await pumping
        local = await client.predict_from_image_path(photos[0])
        assert local.model.head_version == new.version
        assert local.label in new.labels
