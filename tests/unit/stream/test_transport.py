"""The events app's Kafka consumer waits at most `stream.fetch_wait_ms` per fetch (Faust's own
1500 ms held live records back; see stream/checkpoint.py). Nothing connects: the consumer is
built, not started."""

from __future__ import annotations

from harclip.config import Settings
from stream.application import create_app


async def test_the_consumer_fetch_wait_is_the_setting() -> None:
    s = Settings()
    s = s.model_copy(update={"stream": s.stream.model_copy(update={"fetch_wait_ms": 77})})
    app = create_app(s, partitions=3)
    consumer = app.consumer._thread._create_worker_consumer(app.transport)
    try:
        assert consumer._fetch_max_wait_ms == 77
    finally:
        await consumer.stop()
