"""Faults that must never lose or stall frames: a dead-letter copy over the broker's limit, a frame
over the limit at the producer, and the "not now" answers of real services (Redis at maxmemory,
Redis turned into a read-only replica, an Elasticsearch index with writes blocked), which are
retried while `/ready` says why - never dead-lettered."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.record.default_records import DefaultRecordBatchBuilder

from consumers.worker import Worker
from harclip.config import Settings
from harclip.io import store
from harclip.io.es import make_es
from harclip.io.kafka import FrameTooLarge, send_frame
from harclip.messages import Frame, new_frame_id, now_ms
from tests.support.kafka import header, read_topic
from tests.support.processes import free_port
from tests.support.scoped import Unique
from tests.support.worker import (
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
LIMIT = 64 * 1024  # the test topics' max.message.bytes and the producers' max_request_size


def small_limit(s: Settings) -> Settings:
    return s.model_copy(update={"kafka": s.kafka.model_copy(update={"max_message_bytes": LIMIT})})


async def upload(p: AIOKafkaProducer, s: Settings, stream: str, seq: int, data: bytes) -> Frame:
    frame = Frame(new_frame_id(), stream, seq, now_ms(), data)
    await (await send_frame(p, s.kafka.topics.uploads, frame))
    return frame


async def test_a_dead_letter_copy_over_the_limit_is_cut_and_the_worker_goes_on(
    unique: Unique, tiny_bundle: Path, sample_photos: list[Path]
) -> None:
    s = small_limit(worker_settings(unique.settings, tiny_bundle))
    # a frame 16 bytes under the limit: it fits, its copy with an `error` header does not
    probe = Frame(new_frame_id(), "cam", 0, now_ms(), b"")
    framing = DefaultRecordBatchBuilder.estimate_size_in_bytes(b"cam", b"", probe.headers())
    garbage = b"\x00" * (LIMIT - framing - 16)
    async with running_worker(s) as worker, producer(s) as p:
        bad = await upload(p, s, "cam", 0, garbage)
        await upload(p, s, "cam", 1, sample_photos[0].read_bytes())
        await worker.wait_for(lambda: failed(worker) >= 1 and predicted(worker) >= 1, TIMEOUT_S)
    dlq = await read_topic(s, s.kafka.topics.dlq)
    assert [header(r, "frame_id") for r in dlq] == [bad.frame_id]
    record = dlq[0]
    assert header(record, "truncated") == str(len(garbage))
    assert (header(record, "error") or "").startswith("undecodable: ")
    assert record.value is not None and garbage.startswith(record.value)


async def test_the_producer_refuses_a_frame_over_the_limit_before_sending(
    unique: Unique,
) -> None:
    s = small_limit(unique.settings)
    async with producer(s) as p:
        with pytest.raises(FrameTooLarge, match=r"is 100,000 bytes: over the Kafka message limit"):
            await upload(p, s, "cam", 0, b"x" * 100_000)
        await upload(p, s, "cam", 1, b"x" * 1000)  # the producer goes on
    assert len(await read_topic(s, s.kafka.topics.uploads)) == 1


async def _retried_then_delivered(
    worker: Worker, p: AIOKafkaProducer, s: Settings, data: bytes, sink: str,
    block: Callable[[], Awaitable[None]], unblock: Callable[[], Awaitable[None]],
) -> None:  # fmt: skip
    """Blocks `sink`, sends a frame, checks it is retried (/ready names the sink, nothing in the
    DLQ), unblocks and checks it is delivered."""
    await upload(p, s, "cam", 0, data)
    await worker.wait_for(lambda: predicted(worker) >= 1, TIMEOUT_S)
    await block()
    await upload(p, s, "cam", 1, data)
    unready = f"sink {sink} unavailable (retrying)"
    await worker.wait_for(lambda: unready in worker.not_ready(), TIMEOUT_S)
    code, text = await ready(worker.health_port)
    assert code == 503 and unready in text
    await unblock()
    await worker.wait_for(lambda: predicted(worker) >= 2, TIMEOUT_S)
    assert failed(worker) == 0
    assert not await read_topic(s, s.kafka.topics.dlq)


async def test_redis_at_maxmemory_is_retried_not_dead_lettered(
    unique: Unique, tiny_bundle: Path, sample_photos: list[Path], tmp_path: Path
) -> None:
    port = free_port()
    base = worker_settings(unique.settings, tiny_bundle)
    s = base.model_copy(update={"redis": base.redis.model_copy(update={"url": redis_url(port)})})
    async with redis_server(port, tmp_path), running_worker(s) as worker, producer(s) as p:
        admin = store.make_redis(s.redis)
        try:
            await admin.config_set("maxmemory-policy", "noeviction")

            async def block() -> None:
                await admin.config_set("maxmemory", "1")  # every write: OOM

            async def unblock() -> None:
                await admin.config_set("maxmemory", "0")

            data = sample_photos[0].read_bytes()
            await _retried_then_delivered(worker, p, s, data, "redis", block, unblock)
            latest = await store.read_latest(admin, s.redis, "cam")
            assert latest is not None and latest.seq == 1
        finally:
            await admin.aclose()


async def test_a_redis_switched_to_a_read_only_replica_is_retried(
    unique: Unique, tiny_bundle: Path, sample_photos: list[Path], tmp_path: Path
) -> None:
    primary_port, port = free_port(), free_port()
    base = worker_settings(unique.settings, tiny_bundle)
    s = base.model_copy(update={"redis": base.redis.model_copy(update={"url": redis_url(port)})})
    (tmp_path / "p").mkdir()
    (tmp_path / "r").mkdir()
    async with (
        redis_server(primary_port, tmp_path / "p"),
        redis_server(port, tmp_path / "r"),
        running_worker(s) as worker,
        producer(s) as p,
    ):
        admin = store.make_redis(s.redis)
        try:

            async def block() -> None:  # a failover: this server becomes a replica (READONLY)
                await admin.replicaof("127.0.0.1", primary_port)

            async def unblock() -> None:  # ... and is promoted again
                await admin.replicaof("NO", "ONE")

            data = sample_photos[0].read_bytes()
            await _retried_then_delivered(worker, p, s, data, "redis", block, unblock)
        finally:
            await admin.aclose()


async def test_an_elasticsearch_index_with_writes_blocked_is_retried(
    unique: Unique, tiny_bundle: Path, sample_photos: list[Path]
) -> None:
    s = worker_settings(unique.settings, tiny_bundle)
    index = s.elasticsearch.predictions_index
    async with running_worker(s) as worker, producer(s) as p:
        es = make_es(s.elasticsearch)
        try:

            async def block() -> None:  # as a flood-stage disk watermark or an operator does
                await es.indices.put_settings(index=index, settings={"index.blocks.write": True})

            async def unblock() -> None:
                await es.indices.put_settings(index=index, settings={"index.blocks.write": False})

            data = sample_photos[0].read_bytes()
            await _retried_then_delivered(worker, p, s, data, "elasticsearch", block, unblock)
            await es.indices.refresh(index=index)
            assert (await es.count(index=index))["count"] == 2
        finally:
            await es.close()
