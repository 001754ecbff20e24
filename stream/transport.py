"""Faust's aiokafka transport with one change: the consumer's `fetch_max_wait_ms`.

faust-streaming creates its consumer with `fetch_max_wait_ms=1500` (not a setting). aiokafka keeps
one fetch request in flight per broker, and a request for partitions that have no new data waits
that long at the broker; partitions whose records were just handed out must wait for it to come
back. Measured here (bench/stream.py at 300 predictions/s): records waited 0.5-1 s (p50) and up
to 2.5 s before the app applied them; with 50 ms, ~0.1 s. `stream.fetch_wait_ms` sets it."""

from __future__ import annotations

from typing import Any, ClassVar

from faust.transport.drivers import aiokafka as driver


def transport_class(fetch_wait_ms: int) -> type[driver.Transport]:
    """An aiokafka `Transport` whose consumer waits at most `fetch_wait_ms` per fetch."""

    class ConsumerThread(driver.AIOKafkaConsumerThread):
        def _create_worker_consumer(self, transport: Any) -> Any:
            consumer = super()._create_worker_consumer(transport)
            consumer._fetch_max_wait_ms = fetch_wait_ms  # read when the consumer starts
            return consumer

    class TunedConsumer(driver.Consumer):
        def _new_consumer_thread(self) -> Any:
            return ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    class Transport(driver.Transport):
        Consumer: ClassVar[Any] = TunedConsumer

    return Transport
