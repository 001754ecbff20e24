"""Head updates from `harclip.control` (compacted): read from the beginning at start-up, then
follow new records; hand every newer head that fits the model to `apply` (the worker swaps it in
between batches)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError
from aiokafka.structs import TopicPartition

from harclip.config import KafkaSettings
from harclip.errors import MessageError, SinkUnavailable
from harclip.io.kafka import make_consumer
from harclip.model.head import Head

log = logging.getLogger(__name__)

HEAD_KEY = b"head"
_POLL_MS = 500


class ControlFollower:
    """Reads the control topic without a consumer group (every worker sees every record)."""

    def __init__(self, s: KafkaSettings, apply: Callable[[Head], None]) -> None:
        self._s = s
        self._apply = apply
        self._consumer: AIOKafkaConsumer | None = None

    async def start(self) -> None:
        """Connect and apply everything already on the topic (so the first batch uses the
        newest head); `SinkUnavailable` when Kafka does not answer."""
        topic = self._s.topics.control
        self._consumer = make_consumer(self._s, group_id=None)
        try:
            await self._consumer.start()
            tps = [TopicPartition(topic, 0)]  # the control topic has one partition
            self._consumer.assign(tps)
            await self._consumer.seek_to_beginning(*tps)
            end = await self._consumer.end_offsets(tps)
            while not await self._caught_up(end):
                await self._poll()
        except KafkaError as e:
            raise SinkUnavailable(f"cannot read {topic}: {e!r}") from e

    async def run(self, stop: asyncio.Event) -> None:
        """Follow new records until `stop` is set; Kafka errors are logged and retried."""
        while not stop.is_set():
            try:
                await self._poll()
            except KafkaError as e:
                log.warning("reading %s failed (%r); retrying", self._s.topics.control, e)
                await asyncio.sleep(1.0)

    async def stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()

    async def _caught_up(self, end: dict[TopicPartition, int]) -> bool:
        assert self._consumer is not None
        for tp, offset in end.items():
            if await self._consumer.position(tp) < offset:
                return False
        return True

    async def _poll(self) -> None:
        assert self._consumer is not None
        batches = await self._consumer.getmany(timeout_ms=_POLL_MS)
        for records in batches.values():
            for rec in records:
                if rec.key != HEAD_KEY or not rec.value:
                    continue
                try:
                    self._apply(Head.from_control(rec.value))
                except MessageError as e:
                    log.warning("ignoring a head on %s: %s", self._s.topics.control, e)
