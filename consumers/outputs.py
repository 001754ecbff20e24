"""The worker's sinks: Kafka (predictions and the dead-letter topic), Redis and Elasticsearch as
the settings turn them on, opened in `start()`, written through one `Delivery`."""

from __future__ import annotations

from collections.abc import Callable

from consumers.delivery import Delivery
from consumers.keyframes import KeyframePolicy
from consumers.metrics import WorkerMetrics
from consumers.sinks import ElasticsearchSink, KafkaSink, RedisSink, Sink
from consumers.thumbnails import Thumbnails
from consumers.work import BatchResult
from harclip.config import Settings
from harclip.io.indices import EmbeddingSpace


class Outputs:
    """The sinks of one worker; the worker decides when to deliver and when to commit."""

    def __init__(self, settings: Settings, space: EmbeddingSpace, metrics: WorkerMetrics) -> None:
        self._settings = settings
        self._space = space  # of the worker's model: Elasticsearch indexes embeddings in it
        self._metrics = metrics
        self._sinks: list[Sink] = []
        self._delivery: Delivery | None = None

    @property
    def trouble(self) -> set[str]:
        """The sinks failing right now (retried; fetching pauses meanwhile)."""
        return self._delivery.trouble if self._delivery is not None else set()

    async def start(self, on_change: Callable[[], None]) -> None:
        """Open every sink (`SinkUnavailable` when one does not answer); `on_change()` after
        every round of flushes."""
        s = self._settings
        kafka = KafkaSink(s.kafka, self._metrics.dlq_lost)  # also the dead-letter writer
        self._sinks = [kafka]
        if s.redis.enabled:
            self._sinks.append(RedisSink(s.redis))
        if s.elasticsearch.enabled:
            e = s.elasticsearch
            keyframes = KeyframePolicy(e.keyframe_distance, e.keyframe_every_s,
                                       enabled=e.keyframes)  # fmt: skip
            thumbs = Thumbnails(s.objects, s.model.max_pixels) if s.objects.enabled else None
            self._sinks.append(ElasticsearchSink(e, self._space, keyframes, thumbs))
        for sink in self._sinks:
            await sink.start()
        self._delivery = Delivery(self._sinks, kafka, self._metrics, on_change)

    async def deliver(self, result: BatchResult) -> bool:
        """Write `result` to every sink (see `Delivery.deliver`)."""
        assert self._delivery is not None
        return await self._delivery.deliver(result)

    def give_up_at(self, deadline: float) -> None:
        """Stop retrying a sink that is down at `deadline` (monotonic seconds)."""
        if self._delivery is not None:
            self._delivery.give_up_at = deadline

    async def stop(self) -> None:
        for sink in self._sinks:
            await sink.stop()
