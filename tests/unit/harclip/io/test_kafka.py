"""harclip.io.kafka without a broker: client options and topic specs."""

from __future__ import annotations

import pytest

from harclip.config import KafkaSettings
from harclip.errors import ConfigError
from harclip.io import kafka, topics


def test_producers_are_idempotent_with_acks_all_and_a_buffer_per_role() -> None:
    s = KafkaSettings(producer_linger_ms=7, client_id="cam")
    live = kafka.producer_options(s, "live")
    bulk = kafka.producer_options(s, "bulk")
    for o in (live, bulk):
        assert o["acks"] == "all"
        assert o["enable_idempotence"] is True
        assert o["linger_ms"] == 7
        assert o["max_request_size"] == s.max_message_bytes
    assert live["client_id"] == "cam-live"
    assert (
        live["max_batch_size"]
        < kafka.producer_options(s)["max_batch_size"]
        < bulk["max_batch_size"]
    )


def test_consumers_commit_only_when_told_and_start_at_the_earliest() -> None:
    s = KafkaSettings(group_id="g1")
    o = kafka.consumer_options(s)
    assert o["group_id"] == "g1"
    assert o["enable_auto_commit"] is False
    assert o["auto_offset_reset"] == "earliest"
    assert o["max_partition_fetch_bytes"] >= s.max_message_bytes
    other = kafka.consumer_options(s, group_id="g2", max_poll_records=3)
    assert (other["group_id"], other["max_poll_records"]) == ("g2", 3)


async def test_aiokafka_accepts_the_options() -> None:
    s = KafkaSettings()
    producer = kafka.make_producer(s, role="live")
    consumer = kafka.make_consumer(s, "t1", "t2")
    assert consumer.subscription() == {"t1", "t2"}
    await producer.stop()  # never started: nothing connects
    await consumer.stop()


def test_six_topics_with_their_configs() -> None:
    s = KafkaSettings(partitions=4, frames_retention_ms=120_000, max_message_bytes=2_000_000)
    specs = {t.name: t for t in topics.topic_specs(s)}
    assert set(specs) == set(s.topics.model_dump().values())
    frames, control = specs[s.topics.frames], specs[s.topics.control]
    assert frames.num_partitions == 4
    assert frames.topic_configs == {"retention.ms": "120000", "max.message.bytes": "2000000"}
    assert control.num_partitions == 1
    assert control.topic_configs["cleanup.policy"] == "compact"
    assert "retention.ms" not in specs[s.topics.uploads].topic_configs  # uploads never age out
    two = [t for t in topics.topic_specs(s, partitions=2) if t.name != control.name]
    assert all(t.num_partitions == 2 for t in two)


def test_partitions_must_be_positive() -> None:
    with pytest.raises(ConfigError, match="partitions must be >= 1"):
        topics.topic_specs(KafkaSettings(), partitions=0)


def test_headers_become_a_list_of_name_and_bytes() -> None:
    assert kafka.headers_list((("a", b"1"), ("b", None))) == [("a", b"1"), ("b", b"")]
    assert kafka.headers_list(None) == []
