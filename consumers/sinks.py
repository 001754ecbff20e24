"""Where a batch's results go: Kafka (Predictions and the dead-letter topic), Redis (live view)
and Elasticsearch (history + embeddings). Sinks only add, flush and write (quix-streams'
`BatchingSink`): they open clients in `start()`, buffer with `add()`, write in `flush()` - which
raises `SinkUnavailable` and keeps the buffer on failure, so the worker can retry, or
`SinkRefused` naming the frames it refused for good - and never loop or commit. Every write is
idempotent by frame_id (Kafka's is at-least-once).
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from elasticsearch import AsyncElasticsearch
from redis import asyncio as aioredis

from consumers.work import BatchResult, Predicted, Work
from harclip.config import ElasticsearchSettings, KafkaSettings, RedisSettings
from harclip.errors import SinkRefused, SinkUnavailable, Unavailable
from harclip.io import search, store
from harclip.io.kafka import make_producer


class Sink(Protocol):
    name: str

    async def start(self) -> None: ...

    def add(self, result: BatchResult) -> None: ...

    async def flush(self) -> None:
        """Write what was added; `SinkUnavailable` (buffer kept) if not acknowledged,
        `SinkRefused` if some frames were refused for good."""
        ...

    def clear(self) -> None:
        """Forget what was added (after a write the sink refused for good)."""
        ...

    async def stop(self) -> None: ...


class KafkaSink:
    """Predictions to `harclip.predictions` and failed frames to `harclip.frames.dlq` (original
    key, bytes and headers plus `error`), with one idempotent acks=all producer."""

    name = "kafka"

    def __init__(self, s: KafkaSettings) -> None:
        self._s = s
        self._producer: AIOKafkaProducer | None = None
        self._preds: list[Predicted] = []
        self._failed: list[Work] = []

    async def start(self) -> None:
        self._producer = make_producer(self._s, role="sink")
        try:
            await self._producer.start()
        except KafkaError as e:
            raise Unavailable(f"Kafka at {self._s.bootstrap}: {e!r}") from e

    def add(self, result: BatchResult) -> None:
        self._preds.extend(result.predicted)
        self._failed.extend(result.failed)

    def dead_letter(self, works: list[Work]) -> None:
        """Add frames for the DLQ only (frames another sink refused; `error` set)."""
        self._failed.extend(works)

    async def flush(self) -> None:
        """Kafka errors are always retried: this sink also carries the DLQ, so it cannot
        dead-letter its own refusals."""
        if not self._preds and not self._failed:
            return
        assert self._producer is not None, "start() first"
        t = self._s.topics
        try:
            futures = [
                await self._producer.send(
                    t.predictions, p.prediction.to_json(), key=p.prediction.stream_id.encode()
                )
                for p in self._preds
            ]
            futures += [
                await self._producer.send(
                    t.dlq,
                    w.value or b"",
                    key=w.key,
                    headers=[*w.headers, ("error", (w.error or "unknown").encode())],
                )
                for w in self._failed
            ]
            await asyncio.gather(*futures)
        except KafkaError as e:
            raise SinkUnavailable(f"Kafka: {e!r}") from e
        self.clear()

    def clear(self) -> None:
        self._preds, self._failed = [], []

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()


class _PredictedBuffer:
    """`add` and `clear` of a sink that writes only a batch's predicted frames."""

    name: str

    def __init__(self) -> None:
        self._preds: list[Predicted] = []

    def add(self, result: BatchResult) -> None:
        self._preds.extend(result.predicted)

    def clear(self) -> None:
        self._preds = []

    def _refused(self, e: SinkRefused) -> SinkRefused:
        """`e` naming every buffered frame when it names none (the whole write was refused)."""
        if e.frames:
            return e
        return SinkRefused(str(e), {p.prediction.frame_id: str(e) for p in self._preds})


class RedisSink(_PredictedBuffer):
    """Latest Prediction + frame per stream, recent stream, streams set (harclip.io.store)."""

    name = "redis"

    def __init__(self, s: RedisSettings) -> None:
        super().__init__()
        self._s = s
        self._redis: aioredis.Redis | None = None

    async def start(self) -> None:
        self._redis = store.make_redis(self._s)
        await store.ping(self._redis)

    async def flush(self) -> None:
        if not self._preds:
            return
        assert self._redis is not None, "start() first"
        frames = {p.prediction.frame_id: p.work.frame.data for p in self._preds if p.work.frame}
        try:
            await store.write_predictions(
                self._redis, self._s, [p.prediction for p in self._preds], frames
            )
        except SinkRefused as e:  # one pipeline for the batch: all or nothing
            raise self._refused(e) from e
        self.clear()

    async def stop(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()


class ElasticsearchSink(_PredictedBuffer):
    """Predictions with their embeddings, one bulk per flush, `_id` = frame_id."""

    name = "elasticsearch"

    def __init__(self, s: ElasticsearchSettings, embed_dim: int) -> None:
        super().__init__()
        self._s = s
        self._embed_dim = embed_dim
        self._es: AsyncElasticsearch | None = None

    async def start(self) -> None:
        """Connect and put the index templates; `ConfigError` if the index's vector size
        differs from the model's."""
        self._es = search.make_es(self._s)
        await search.ensure_templates(self._es, self._s, self._embed_dim)

    async def flush(self) -> None:
        """One bulk; Elasticsearch names each document it refused (`SinkRefused`), the others
        are written."""
        if not self._preds:
            return
        assert self._es is not None, "start() first"
        items = [(p.prediction, p.embedding) for p in self._preds]
        try:
            await search.index_predictions(self._es, self._s, items)
        except SinkRefused as e:
            raise self._refused(e) from e
        self.clear()

    async def stop(self) -> None:
        if self._es is not None:
            await self._es.close()
