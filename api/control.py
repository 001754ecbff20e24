"""Follow `harclip.control`: when a newer head is published (by this API, another replica or
`harclip labels`), use it from the next batch on. Kafka being down only delays this; predict
keeps working with the head it has."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from harclip.errors import MessageError, SinkUnavailable

if TYPE_CHECKING:
    from api.runtime import Runtime

log = logging.getLogger(__name__)

_RETRY_S = 5.0  # pause before reconnecting to Kafka, seconds


async def follow_control(runtime: Runtime) -> None:
    """Run until cancelled: read the control topic from the start, swap in newer heads."""
    from aiokafka.errors import KafkaError

    from harclip.io.kafka import ensure_topics, make_consumer
    from harclip.model.head import Head

    s = runtime.settings.kafka
    while True:
        consumer = make_consumer(s, s.topics.control, group_id=None)
        try:
            await ensure_topics(s)
            await consumer.start()
            async for record in consumer:
                if record.key != b"head" or record.value is None:
                    continue
                try:
                    runtime.swap_head(Head.from_control(record.value))
                except MessageError as e:
                    log.warning("ignoring a head on %s: %s", s.topics.control, e)
        except (KafkaError, OSError, SinkUnavailable) as e:
            log.warning("cannot follow %s (%r); retrying in %g s", s.topics.control, e, _RETRY_S)
        finally:
            await consumer.stop()
        await asyncio.sleep(_RETRY_S)
