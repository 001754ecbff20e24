"""Sink trouble on the real services: a Redis outage (a private redis-server, SIGKILLed and
restarted) holds back the commit until Redis is back, and frames Elasticsearch refuses for good
go to the DLQ before their offsets are committed."""

from __future__ import annotations

from pathlib import Path

import httpx
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import TopicPartition

from harclip.config import Settings
from harclip.io import indices, store
from harclip.io.es import make_es
from harclip.io.indices import EmbeddingSpace
from harclip.io.kafka import send_frame
from harclip.messages import Frame, Prediction, new_frame_id, now_ms
from harclip.model.bundle import Bundle
from tests.support.kafka import header, read_topic
from tests.support.processes import free_port
from tests.support.scoped import Unique
from tests.support.worker import (
    PARTITIONS,
    failed,
    predicted,
    producer,
    ready,
    redis_server,
    redis_url,
    running_worker,
    worker_settings,
)

TIMEOUT_S = 90.0


async def committed(s: Settings, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
    """The group's committed offsets of `tps` (-1: none yet), read without joining the group."""
    admin = AIOKafkaAdminClient(bootstrap_servers=s.kafka.bootstrap)
    await admin.start()
    try:
        got = await admin.list_consumer_group_offsets(s.kafka.group_id, partitions=tps)
    finally:
        await admin.close()
    return {tp: (got[tp].offset if tp in got else -1) for tp in tps}


async def test_a_redis_outage_holds_the_commit_until_redis_is_back(
    unique: Unique, tiny_bundle: Path, sample_photos: list[Path], tmp_path: Path
) -> None:
    port = free_port()
    base = worker_settings(unique.settings, tiny_bundle, max_age_ms=600_000, max_batch=4)
    s = base.model_copy(update={"redis": base.redis.model_copy(update={"url": redis_url(port)})})
    t = s.kafka.topics
    photos = [p.read_bytes() for p in sample_photos[:12]]
    sent: list[Frame] = []
    redis_errors = 0.0

    async with (
        redis_server(port, tmp_path) as first,
        running_worker(s) as worker,
        producer(s) as p,
    ):

        async def send(seq: int) -> tuple[TopicPartition, int]:
            at = now_ms()
            f = Frame(new_frame_id(at), "cam", seq, at, photos[seq])
            meta = await (await send_frame(p, t.frames, f))
            sent.append(f)
            return TopicPartition(meta.topic, meta.partition), meta.offset

        def sink_errors() -> float:
            v = worker.metrics.registry.get_sample_value(
                "harclip_sink_errors_total", {"sink": "redis"}
            )
            return v or 0.0

        for seq in range(4):
            await send(seq)
        await worker.wait_for(lambda: predicted(worker) >= 4, TIMEOUT_S)
        assert await ready(worker.health_port) == (200, "ready\n")

        await first.astop(kill=True)  # the outage
        during = [await send(seq) for seq in range(4, 8)]
        tp = during[0][0]  # one key: one partition
        assert all(x[0] == tp for x in during)

        unready = "sink redis unavailable (retrying)"
        await worker.wait_for(lambda: unready in worker.not_ready(), TIMEOUT_S)
        code, text = await ready(worker.health_port)
        assert code == 503 and unready in text
        # retried at least once after Kafka and Elasticsearch acknowledged the batch ...
        before = sink_errors()
        await worker.wait_for(lambda: sink_errors() >= before + 1, TIMEOUT_S)
        redis_errors = sink_errors()
        # ... and still nothing of the outage's frames is committed: the commit waits for all
        assert (await committed(s, [tp]))[tp] == during[0][1]  # the first 4, not these
        assert predicted(worker) == 4  # counted only once every sink acknowledged
        async with httpx.AsyncClient() as http:
            assert (
                await http.get(f"http://127.0.0.1:{worker.health_port}/health")
            ).status_code == 200

        async with redis_server(port, tmp_path):  # back, on the same port (empty)
            after = [await send(seq) for seq in range(8, 12)]
            await worker.wait_for(lambda: predicted(worker) >= 12, TIMEOUT_S)
            await worker.wait_for(lambda: not worker.not_ready(), TIMEOUT_S)
            assert await ready(worker.health_port) == (200, "ready\n")
            last = max(o for _, o in during + after)
            assert (await committed(s, [tp]))[tp] == last + 1
            r = store.make_redis(s.redis)
            try:
                latest = await store.read_latest(r, s.redis, "cam")
            finally:
                await r.aclose()
            assert latest is not None and latest.frame_id == sent[-1].frame_id

    assert redis_errors >= 2
    ids = await es_ids(s, len(sent))
    assert sorted(ids) == sorted(f.frame_id for f in sent)  # each frame exactly once
    preds = {Prediction.from_json(r.value).frame_id for r in await read_topic(s, t.predictions)}
    assert preds == {f.frame_id for f in sent}


async def es_ids(s: Settings, most: int) -> list[str]:
    """The `_id`s of every document in the test's predictions index (after a refresh)."""
    es = make_es(s.elasticsearch)
    try:
        index = s.elasticsearch.predictions_index
        await es.indices.refresh(index=index)
        hits = (await es.search(index=index, size=most + 50, source=False,
                                query={"match_all": {}}))["hits"]["hits"]  # fmt: skip
    finally:
        await es.close()
    return [h["_id"] for h in hits]


async def test_frames_elasticsearch_refuses_go_to_the_dlq_before_the_commit(
    unique: Unique, tiny_bundle: Path, sample_photos: list[Path]
) -> None:
    s = worker_settings(unique.settings, tiny_bundle, max_age_ms=600_000)
    t = s.kafka.topics
    # the test's index maps stream_id as a number: documents of stream "7" are taken, those of
    # stream "cam" refused with a 400 (document_parsing_exception)
    m = Bundle.load(tiny_bundle).manifest
    space = EmbeddingSpace(m.name, str(m.version), m.embed_dim)
    mappings = indices.predictions_mappings(m.embed_dim)
    mappings["properties"]["stream_id"] = {"type": "long"}
    es = make_es(s.elasticsearch)
    try:  # today's index of this space, made before the worker's template applies
        today = indices.predictions_index(s.elasticsearch, space, now_ms())
        aliases = {s.elasticsearch.predictions_index: {}}
        await es.indices.create(index=today, mappings=mappings, aliases=aliases)
    finally:
        await es.close()
    data = sample_photos[0].read_bytes()
    frames = [Frame(new_frame_id(), "7" if i % 2 else "cam", i, now_ms(), data) for i in range(8)]
    refused = {f.frame_id for f in frames if f.stream_id == "cam"}
    async with running_worker(s) as worker, producer(s) as p:
        for f in frames:
            await (await send_frame(p, t.uploads, f))
        await worker.wait_for(lambda: predicted(worker) + failed(worker) >= 8, TIMEOUT_S)
        assert (predicted(worker), failed(worker)) == (4, 4)
        metric = worker.metrics.registry.get_sample_value(
            "harclip_frames_failed_total", {"reason": "sink_refused"}
        )
        assert metric == 4
        # the worker goes on
        extra = Frame(new_frame_id(), "7", 100, now_ms(), data)
        await (await send_frame(p, t.uploads, extra))
        await worker.wait_for(lambda: predicted(worker) >= 5, TIMEOUT_S)
        tps = [TopicPartition(t.uploads, i) for i in range(PARTITIONS)]
        offsets = await committed(s, tps)

    dlq = await read_topic(s, t.dlq)
    assert {header(r, "frame_id") for r in dlq} == refused  # once each
    assert len(dlq) == len(refused)
    for r in dlq:
        error = header(r, "error") or ""
        assert error.startswith("sink elasticsearch refused: "), error
        assert "stream_id" in error, error
        assert r.value == data and r.key == b"cam" and header(r, "stream_id") == "cam"
    # committed after the DLQ acknowledged: every uploaded record is done
    ends = {tp: 0 for tp in tps}
    for r in await read_topic(s, t.uploads):
        tp = TopicPartition(r.topic, r.partition)
        ends[tp] = max(ends[tp], r.offset + 1)
    assert offsets == {tp: (ends[tp] if ends[tp] else -1) for tp in tps}
    ids = await es_ids(s, len(frames))
    assert sorted(ids) == sorted({f.frame_id for f in frames} - refused | {extra.frame_id})
