"""Each agent applies each partition's records once and in offset order, whatever the Kafka
client does around a rebalance.

Faust's consumer can, in a rebalance, let records pass that an agent never saw: a late
seek-to-committed rewinds its read offsets while records are being delivered, the false "gap"
that follows counts records still in an agent's queue as acknowledged, the next commit goes
past them and the next rebalance drops the queue. Offsets committed by Faust are therefore not
trusted to say what was applied. Instead every agent keeps, per partition, the offset of the last
record it applied (`Positions`), in the `positions` table (a changelog topic, so the next owner
of the partition recovers it), written only after what the records led to (state, outputs) is
written. Each record is then:

- new (offset = last + 1, or no position yet): applied;
- redelivered (offset <= last): skipped, it was applied;
- after a hole (offset > last + 1): the records in between are read from Kafka directly (a plain
  consumer assigned to that partition, `RangeReader`) and applied first; a range Kafka no longer
  holds (retention) or that holds no records (transaction markers) is logged and passed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from harclip.config import KafkaSettings
from harclip.errors import SinkUnavailable
from harclip.io.kafka import consumer_options

log = logging.getLogger("stream")

KafkaRecord = Any  # aiokafka ConsumerRecord: .offset, .key, .value, .timestamp (ms)
Focus = Callable[[Any], None]  # makes an event of the record's partition Faust's current one


@dataclass(frozen=True, slots=True)
class Record:
    """One Kafka record as an agent sees it, whether Faust delivered it or it was read back."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_s: float  # the record's Kafka timestamp, seconds since the epoch


class RangeReader:
    """Reads a range of offsets of one partition with a consumer of its own (no group)."""

    def __init__(self, kafka: KafkaSettings) -> None:
        self._kafka = kafka
        self._consumer: AIOKafkaConsumer | None = None
        self._lock = asyncio.Lock()

    async def read(self, topic: str, partition: int, start: int, end: int) -> list[KafkaRecord]:
        """Records with `start <= offset < end` that Kafka still holds, in order;
        `SinkUnavailable` when Kafka does not answer within its request timeout."""
        tp = TopicPartition(topic, partition)
        timeout_s = self._kafka.request_timeout_ms / 1000
        async with self._lock:
            try:
                async with asyncio.timeout(timeout_s * 2):
                    c = await self._started()
                    c.assign([tp])
                    c.seek(tp, start)
                    out: list[KafkaRecord] = []
                    while True:
                        last = (await c.end_offsets([tp]))[tp]
                        if await c.position(tp) >= min(end, last):
                            return out
                        batch = await c.getmany(tp, timeout_ms=500)
                        for r in batch.get(tp, []):
                            if r.offset >= end:
                                return out
                            out.append(r)
            except (KafkaError, TimeoutError) as e:
                raise SinkUnavailable(
                    f"Kafka at {self._kafka.bootstrap}: cannot read {topic}[{partition}] "
                    f"offsets {start}..{end - 1}: {e!r}"
                ) from e

    async def _started(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            opts = consumer_options(self._kafka)
            opts |= {"group_id": None, "client_id": f"{self._kafka.client_id}-stream-reread"}
            self._consumer = AIOKafkaConsumer(**opts)
            await self._consumer.start()
        return self._consumer

    async def close(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None


class Positions:
    """The offset of the last record each agent applied, per partition, cached here and kept in
    a Faust table (`table`: bytes -> bytes). Table reads and writes find their partition through
    the current event, so `admit` and `persist` take a `focus` that makes an event of the
    partition the current one (stream/checkpoint.py)."""

    def __init__(self, table: Any, reader: RangeReader, on_recovered: Any = None) -> None:
        self._table = table
        self._reader = reader
        self._on_recovered = on_recovered  # callable(agent, n) for metrics
        self._pos: dict[tuple[str, str, int], int] = {}
        self._events: dict[tuple[str, str, int], Any] = {}  # newest applied event, per key
        self._unsaved: set[tuple[str, str, int]] = set()

    @staticmethod
    def key(agent: str, topic: str, partition: int) -> bytes:
        return f"{agent}:{topic}:{partition}".encode()

    async def admit(self, agent: str, ev: Any, focus: Focus) -> list[KafkaRecord] | None:
        """None when `ev` was applied before (skip it); else the records before it that this
        agent never got (usually none), to apply first, in order."""
        msg = ev.message
        k = (agent, msg.topic, msg.partition)
        pos = self._pos.get(k)
        if pos is None:
            focus(ev)
            raw = self._table.get(self.key(*k))
            if raw is None:
                return []
            pos = self._pos[k] = int(raw)
        offset = msg.offset
        if offset <= pos:
            return None
        if offset == pos + 1:
            return []
        missed = await self._reader.read(msg.topic, msg.partition, pos + 1, offset)
        log.warning(
            "%s: records %d..%d of %s[%d] were not delivered by the consumer; read %d of them "
            "from Kafka directly and applied them first", agent, pos + 1, offset - 1,
            msg.topic, msg.partition, len(missed),
        )  # fmt: skip
        if self._on_recovered is not None:
            self._on_recovered(agent, len(missed))
        return missed

    def applied(self, agent: str, ev: Any) -> None:
        """`ev` (and every record of its partition before it) is applied."""
        msg = ev.message
        k = (agent, msg.topic, msg.partition)
        self._pos[k] = msg.offset
        self._events[k] = ev
        self._unsaved.add(k)

    def persist(self, agent: str, focus: Focus) -> None:
        """Write the agent's positions that changed (after what they stand for is written)."""
        for k in [k for k in self._unsaved if k[0] == agent]:
            focus(self._events.pop(k))  # no longer held: see Checkpoint.commit
            self._table[self.key(*k)] = str(self._pos[k]).encode()
            self._unsaved.discard(k)

    def forget(self, agent: str | None = None) -> None:
        """Drop cached positions (partitions revoked): the table has the saved ones."""
        for k in [k for k in self._pos if agent in (None, k[0])]:
            self._pos.pop(k, None)
            self._events.pop(k, None)
            self._unsaved.discard(k)
