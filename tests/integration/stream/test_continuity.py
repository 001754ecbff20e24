"""RangeReader against real Kafka: what an agent missed is read back by offset."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaProducer

from stream.continuity import RangeReader
from tests.support.scoped import Unique


async def test_a_range_of_offsets_is_read_back_in_order(
    unique: Unique, producer: AIOKafkaProducer
) -> None:
    s = unique.settings
    topic = s.kafka.topics.predictions
    sent = [await producer.send(topic, f"r{i}".encode(), partition=1) for i in range(10)]
    offsets = [m.offset for m in await asyncio.gather(*sent)]
    reader = RangeReader(s.kafka)
    try:
        got = await reader.read(topic, 1, offsets[3], offsets[7])
        assert [r.value for r in got] == [b"r3", b"r4", b"r5", b"r6"]
        assert [r.offset for r in got] == offsets[3:7]
        # past the end of the log: what there is, without waiting for more
        tail = await reader.read(topic, 1, offsets[8], offsets[9] + 50)
        assert [r.value for r in tail] == [b"r8", b"r9"]
        assert await reader.read(topic, 2, 0, 5) == []  # an empty partition
    finally:
        await reader.close()
