"""Rules changes from `harclip.control` (compacted, key `rules`): read from the beginning at
start-up (the newest valid record wins over the rules file), then followed. Every app worker reads
the whole topic (no consumer group). An invalid record is refused with a message naming the rule
and the field; the rules in force stay.

(The lead's `harclip/control.py` is to own following the control topic; this follower should
become a call to it.)"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError
from aiokafka.structs import TopicPartition

from harclip.config import KafkaSettings
from harclip.errors import SinkUnavailable
from harclip.kafka import make_consumer
from harclip.rules import RULES_KEY, Rules, RulesError

log = logging.getLogger(__name__)

_POLL_MS = 500


class RulesFollower:
    """Hands every valid `rules` record to `apply`, and every refusal to `refuse`."""

    def __init__(
        self, s: KafkaSettings, apply: Callable[[Rules], None], refuse: Callable[[str], None]
    ) -> None:
        self._s = s
        self._apply = apply
        self._refuse = refuse
        self._consumer: AIOKafkaConsumer | None = None

    async def start(self) -> None:
        """Connect and apply what is already on the topic; `SinkUnavailable` if Kafka is down."""
        topic = self._s.topics.control
        self._consumer = make_consumer(self._s, group_id=None)
        try:
            await self._consumer.start()
            tp = TopicPartition(topic, 0)  # the control topic has one partition
            self._consumer.assign([tp])
            await self._consumer.seek_to_beginning(tp)
            end = (await self._consumer.end_offsets([tp]))[tp]
            while await self._consumer.position(tp) < end:
                await self.poll(initial=True)
        except KafkaError as e:
            raise SinkUnavailable(f"cannot read {topic}: {e!r}") from e

    async def run(self) -> None:
        """Follow new records until cancelled; Kafka errors are logged and retried."""
        while True:
            try:
                await self.poll()
            except KafkaError as e:
                log.warning("reading %s failed (%r); retrying", self._s.topics.control, e)
                await asyncio.sleep(1.0)

    async def stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()

    async def poll(self, *, initial: bool = False) -> None:
        assert self._consumer is not None
        batches = await self._consumer.getmany(timeout_ms=_POLL_MS)
        for records in batches.values():
            for rec in records:
                if rec.key != RULES_KEY or not rec.value:
                    continue
                try:
                    rules = Rules.from_control(rec.value)
                except RulesError as e:
                    self._refuse(f"rules change at {self._s.topics.control} offset "
                                 f"{rec.offset} refused: {e}")  # fmt: skip
                    continue
                self._apply(rules)
