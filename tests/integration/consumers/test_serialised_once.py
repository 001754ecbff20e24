"""The Kafka and Redis sinks write the same bytes for a Prediction (`Predicted.json()`, made
once per frame: tests/unit/consumers/test_serialised_once.py), read back from the real Kafka
topic and the real Redis recent stream."""

from __future__ import annotations

import numpy as np
from aiokafka.structs import TopicPartition

from consumers.sinks import KafkaSink, RedisSink
from consumers.work import BULK, BatchResult, Predicted, Work
from harclip.io import store
from harclip.io.keys import redis_keys
from harclip.io.store import RECENT_FIELD
from harclip.io.topics import ensure_topics
from tests.support.api import prediction
from tests.support.kafka import read_topic
from tests.support.scoped import Unique


async def test_kafka_and_redis_hold_the_same_bytes(unique: Unique) -> None:
    s = unique.settings
    await ensure_topics(s.kafka)
    preds = [
        Predicted(Work(TopicPartition("t", 0), i, None, b"", [], BULK, 0.0),
                  prediction("cam-1", i, "running", 0.9), np.zeros(4, np.float32))
        for i in range(3)
    ]  # fmt: skip
    result = BatchResult(works=[p.work for p in preds], predicted=preds)
    kafka, redis = KafkaSink(s.kafka), RedisSink(s.redis)
    for sink in (kafka, redis):
        await sink.start()
        sink.add(result)
        await sink.flush()
    await kafka.stop()
    await redis.stop()
    expected = [p.json() for p in preds]
    records = await read_topic(s, s.kafka.topics.predictions, until=lambda rs: len(rs) >= 3)
    assert [r.value for r in records] == expected
    r = store.make_redis(s.redis)
    try:
        entries = await r.xrange(redis_keys(s.redis).recent("cam-1"))
    finally:
        await r.aclose()
    assert [fields[RECENT_FIELD] for _, fields in entries] == expected
