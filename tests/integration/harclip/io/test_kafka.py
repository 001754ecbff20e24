"""harclip.io.kafka against the real broker: topics, produce with headers, consume in a group,
commit, resume after the commit."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from harclip.config import KafkaSettings
from harclip.errors import Unavailable
from harclip.io import kafka
from harclip.io.topics import describe_topics, ensure_topics
from harclip.messages import Frame, new_frame_id, now_ms
from tests.support.scoped import Unique

_WAIT_S = 30.0  # upper bound for a condition to come true


@pytest.fixture
async def topics(unique: Unique) -> AsyncIterator[KafkaSettings]:
    s = unique.settings.kafka
    await ensure_topics(s, partitions=2)
    yield s


def _frames(n: int, stream_id: str = "cam-1") -> list[Frame]:
    t0 = now_ms()
    return [
        Frame(
            frame_id=new_frame_id(t0 + i),
            stream_id=stream_id,
            seq=i,
            captured_at=t0 + i,
            data=b"\xff\xd8jpeg-" + bytes([i]),
            traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
            if i == 0
            else None,
        )
        for i in range(n)
    ]


async def _produce(s: KafkaSettings, frames: list[Frame]) -> None:
    producer = kafka.make_producer(s, role="live")
    await producer.start()
    try:
        for f in frames:
            await kafka.send_frame(producer, s.topics.frames, f)
        await producer.flush()
    finally:
        await producer.stop()


async def _take(consumer: AIOKafkaConsumer, n: int) -> list[ConsumerRecord[bytes, bytes]]:
    """The next `n` records (fewer only if none come within _WAIT_S)."""
    got: list[ConsumerRecord[bytes, bytes]] = []
    async with asyncio.timeout(_WAIT_S):
        while len(got) < n:
            batches = await consumer.getmany(timeout_ms=500, max_records=n - len(got))
            for records in batches.values():
                got.extend(records)
    return got


def _decode(rec: ConsumerRecord[bytes, bytes]) -> Frame:
    return Frame.from_kafka(rec.key, rec.value, kafka.headers_list(rec.headers))


async def _topic_configs(s: KafkaSettings, topic: str) -> dict[str, str]:
    admin = kafka.make_admin(s)
    await admin.start()
    try:
        (resp,) = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    finally:
        await admin.close()
    (_code, _msg, _type, _name, entries) = resp.resources[0]
    return {e[0]: e[1] for e in entries}


async def test_ensure_topics_is_idempotent_and_configures_each_topic(unique: Unique) -> None:
    s = unique.settings.kafka
    created = (await ensure_topics(s, partitions=2)).created
    assert sorted(created) == sorted(s.topics.model_dump().values())
    assert (await ensure_topics(s, partitions=2)).created == []
    found = {t.name: t.partitions for t in await describe_topics(s)}
    assert found[s.topics.frames] == 2 and found[s.topics.control] == 1

    control = await _topic_configs(s, s.topics.control)
    frames = await _topic_configs(s, s.topics.frames)
    assert control["cleanup.policy"] == "compact"
    assert frames["retention.ms"] == str(s.frames_retention_ms)
    assert frames["max.message.bytes"] == str(s.max_message_bytes)


async def test_a_topic_with_too_few_partitions_is_reported_then_grown(
    unique: Unique, caplog: pytest.LogCaptureFixture
) -> None:
    s = unique.settings.kafka.model_copy(update={"partitions": 3})
    await ensure_topics(s, partitions=1)  # as a broker's auto-creation would have left them
    report = await ensure_topics(s)
    assert {t.name for t in report.short} == set(s.topics.model_dump().values()) - {
        s.topics.control
    }
    assert f"topic {s.topics.frames} has 1 partitions, 3 configured" in caplog.text
    grown = await ensure_topics(s, add_partitions=True)
    assert s.topics.frames in grown.grown and not grown.short
    found = {t.name: t.partitions for t in await describe_topics(s)}
    assert found[s.topics.frames] == 3 and found[s.topics.control] == 1


async def test_produce_consume_commit_and_resume_in_the_group(topics: KafkaSettings) -> None:
    s = topics
    sent = _frames(10)
    await _produce(s, sent)

    first = kafka.make_consumer(s, s.topics.frames)
    await first.start()
    try:
        head = await _take(first, 4)
        assert [_decode(r) for r in head] == sent[:4]  # headers, key, bytes round-trip
        last = head[-1]
        await first.commit({TopicPartition(last.topic, last.partition): last.offset + 1})
    finally:
        await first.stop()

    second = kafka.make_consumer(s, s.topics.frames)  # same group: resumes after the commit
    await second.start()
    try:
        rest = await _take(second, 6)
    finally:
        await second.stop()
    assert [_decode(r) for r in rest] == sent[4:]


async def test_wait_kafka_answers_and_names_a_dead_address(settings_kafka: KafkaSettings) -> None:
    await kafka.wait_kafka(settings_kafka, timeout_s=10)
    dead = settings_kafka.model_copy(update={"bootstrap": "127.0.0.1:1"})
    with pytest.raises(Unavailable, match=r"127\.0\.0\.1:1 did not answer within 0\.5 s"):
        await kafka.wait_kafka(dead, timeout_s=0.5)


@pytest.fixture
def settings_kafka(unique: Unique) -> KafkaSettings:
    return unique.settings.kafka
