"""Reading a Kafka topic from its beginning, and record headers, for tests' checks."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import ConsumerRecord, TopicPartition

from harclip.config import Settings


async def read_topic(
    settings: Settings,
    topic: str,
    *,
    until: Callable[[list[ConsumerRecord[bytes, bytes]]], bool] | None = None,
    timeout_s: float = 60.0,
) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record of `topic` from the beginning: up to the end offsets at call time, or, with
    `until`, until `until(records)` holds (`TimeoutError` after `timeout_s`)."""
    c = AIOKafkaConsumer(bootstrap_servers=settings.kafka.bootstrap, enable_auto_commit=False,
                         group_id=None, auto_offset_reset="earliest")  # fmt: skip
    await c.start()
    try:
        parts = c.partitions_for_topic(topic)
        if not parts:
            await c._client.force_metadata_update()
            parts = c.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        c.assign(tps)
        await c.seek_to_beginning(*tps)
        end = await c.end_offsets(tps)
        out: list[ConsumerRecord[bytes, bytes]] = []
        async with asyncio.timeout(timeout_s):
            while True:
                if until is not None and until(out):
                    return out
                if until is None:
                    positions = [await c.position(tp) for tp in tps]
                    if all(pos >= end[tp] for pos, tp in zip(positions, tps, strict=True)):
                        return out
                for records in (await c.getmany(timeout_ms=500)).values():
                    out.extend(records)
    finally:
        await c.stop()


def header(record: ConsumerRecord[bytes, bytes], name: str) -> str | None:
    for k, v in record.headers:
        if k == name:
            return v.decode()
    return None
