"""Where a batch's results go: Kafka (Predictions and the dead-letter topic), Redis (live view)
and Elasticsearch (history + embeddings). Sinks only add, flush and write (quix-streams'
`BatchingSink`): they open clients in `start()`, buffer with `add()`, write in `flush()` - which
raises `SinkUnavailable` and keeps the buffer on failure, so the worker can retry, or
`SinkRefused` naming the frames it refused for good - and never loop or commit. Every write is
idempotent by frame_id (Kafka's is at-least-once).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import replace
from typing import Protocol

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from elasticsearch import AsyncElasticsearch
from prometheus_client import Counter
from redis import asyncio as aioredis

from consumers.keyframes import KeyframePolicy
from consumers.thumbnails import Source, Thumbnails, source
from consumers.work import BatchResult, Predicted, Work
from harclip.config import ElasticsearchSettings, KafkaSettings, RedisSettings
from harclip.errors import SinkRefused, SinkUnavailable, Unavailable
from harclip.io import search, store
from harclip.io.es import make_es
from harclip.io.indices import EmbeddingSpace, ensure_templates
from harclip.io.kafka import is_permanent, make_producer, needs_new_producer
from harclip.messages import Headers

log = logging.getLogger(__name__)


_MAX_ERROR_CHARS = 2000  # the `error` header of a dead-letter record
_MAX_HEADER_BYTES = 4096  # any other header value, cut to this
_MAX_HEADERS = 32
_TRUNCATED_HEADER = 64  # room kept for the `truncated` header, bytes


def dlq_record(work: Work, limit: int) -> tuple[bytes, bytes | None, Headers]:
    """(value, key, headers) of `work`'s dead-letter record, at most `limit` bytes in all: the
    original key, bytes and headers plus `error`; headers capped; when the value does not fit, it
    is cut and a `truncated` header gives its original length (so a frame that was itself at the
    limit still reaches the DLQ, and no record can stall the worker)."""
    error = (work.error or "unknown")[:_MAX_ERROR_CHARS].encode()
    headers: Headers = []
    budget = limit // 4  # the original headers may take a quarter of the record
    for k, v in work.headers[:_MAX_HEADERS]:
        v = v[:_MAX_HEADER_BYTES]
        budget -= len(k) + len(v)
        if budget < 0:
            break
        headers.append((k, v))
    headers.append(("error", error))
    value, key = work.value or b"", (work.key or b"")[:_MAX_HEADER_BYTES] or None
    # the size aiokafka checks against max_request_size, without the value
    framing = DefaultRecordBatchBuilder.estimate_size_in_bytes(key, b"", headers)
    room = limit - framing - _TRUNCATED_HEADER
    if len(value) > room:
        headers.append(("truncated", str(len(value)).encode()))
        value = value[: max(0, room)]
    return value, key, headers


_Record = tuple[str, bytes, bytes | None, Headers]  # topic, value, key, headers


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
    key, bytes and headers plus `error`, cut to fit one message), with one idempotent acks=all
    producer. `lost` counts dead-letter records Kafka refused for good (they cannot go anywhere
    else: logged, counted, committed)."""

    name = "kafka"

    def __init__(self, s: KafkaSettings, lost: Counter | None = None) -> None:
        self._s = s
        self._lost = lost
        self._producer: AIOKafkaProducer | None = None
        self._renew = False  # the producer's sequence broke: replace it before the next write
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
        """Write the buffer. Any transient failure raises `SinkUnavailable` (the whole buffer is
        retried; a Prediction may then be written twice: at-least-once). A Prediction Kafka
        refuses for good raises `SinkRefused` naming its frame (it goes to the DLQ); a DLQ record
        refused for good is logged and counted in `lost`, never retried."""
        if not self._preds and not self._failed:
            return
        if self._renew:
            await self._new_producer()
        t, limit = self._s.topics, self._s.max_message_bytes
        records: list[_Record] = [
            (t.predictions, p.json(), p.prediction.stream_id.encode(), []) for p in self._preds
        ]
        records += [(t.dlq, *dlq_record(w, limit)) for w in self._failed]
        outcomes = await self._send_all(records)
        refused: dict[str, str] = {}
        for i, out in enumerate(outcomes):
            if out is None:
                continue
            if not is_permanent(out):
                self._renew = self._renew or needs_new_producer(out)
                raise SinkUnavailable(f"Kafka: {out!r}") from out
            if i < len(self._preds):
                refused[self._preds[i].prediction.frame_id] = f"Kafka refused it: {out!r}"
                continue
            w = self._failed[i - len(self._preds)]
            log.error("a dead-letter record of %s offset %d is lost: Kafka refused it: %r",
                      w.tp, w.offset, out)  # fmt: skip
            if self._lost is not None:
                self._lost.inc()
        self.clear()
        if refused:
            raise SinkRefused(f"Kafka refused {len(refused)} predictions", refused)

    async def _send_all(self, records: list[_Record]) -> list[BaseException | None]:
        """Send every record and wait for all; per record None (written) or its Kafka error."""
        assert self._producer is not None, "start() first"
        futures: list[asyncio.Future[object] | BaseException] = []
        for topic, value, key, headers in records:
            try:
                futures.append(await self._producer.send(topic, value, key=key, headers=headers))
            except KafkaError as e:  # refused before sending (size) or no metadata (transient)
                futures.append(e)
        outcomes: list[BaseException | None] = []
        for f in futures:
            if isinstance(f, BaseException):
                outcomes.append(f)
                continue
            try:
                await f
                outcomes.append(None)
            except KafkaError as e:
                outcomes.append(e)
        return outcomes

    async def _new_producer(self) -> None:
        """Replace a producer whose sequence broke (`needs_new_producer`) by a new one (a new
        producer id); `SinkUnavailable` while Kafka does not answer (tried again next flush)."""
        old, self._producer = self._producer, None
        if old is not None:
            with contextlib.suppress(Exception):  # whatever the abandoned producer says on exit
                await old.stop()
        try:
            await self.start()
        except Unavailable as e:
            raise SinkUnavailable(str(e)) from e
        self._renew = False
        log.warning("kafka sink: a new producer replaced one whose sequence broke")

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
                self._redis, self._s, [p.prediction for p in self._preds], frames,
                docs=[p.json() for p in self._preds],
            )  # fmt: skip
        except SinkRefused as e:  # one pipeline for the batch: all or nothing
            raise self._refused(e) from e
        self.clear()

    async def stop(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()


class ElasticsearchSink(_PredictedBuffer):
    """Every prediction, with the embedding of keyframes only (`KeyframePolicy`), into the daily
    index of the model's embedding space; one bulk per flush, `_id` = frame_id."""

    name = "elasticsearch"

    def __init__(
        self, s: ElasticsearchSettings, space: EmbeddingSpace, keyframes: KeyframePolicy,
        thumbnails: Thumbnails | None = None,
    ) -> None:  # fmt: skip
        super().__init__()
        self._s = s
        self._space = space
        self._keyframes = keyframes
        self._thumbs = thumbnails  # keyframe thumbnails, written before their documents
        self._items: list[search.Indexed] = []
        self._sources: list[Source] = []
        self._es: AsyncElasticsearch | None = None

    async def start(self) -> None:
        """Connect and put the index templates (this model's space among them); connect the
        thumbnails' object store."""
        self._es = make_es(self._s)
        await ensure_templates(self._es, self._s, self._space)
        if self._thumbs is not None:
            await self._thumbs.start()

    def add(self, result: BatchResult) -> None:
        super().add(result)
        for p in result.predicted:  # keyframes decided once per batch, in order (retries reuse)
            pred = p.prediction
            key = self._keyframes.decide(
                pred.stream_id, pred.frame_id, pred.captured_at, pred.label, p.embedding
            )
            embedding = p.embedding if key == pred.frame_id else None
            self._items.append(search.Indexed(pred, embedding, key, json=p.json()))
            if embedding is not None and self._thumbs is not None and p.work.frame is not None:
                self._sources.append(
                    source(pred.stream_id, pred.captured_at, pred.frame_id, p.work.frame.data)
                )

    def clear(self) -> None:
        super().clear()
        self._items, self._sources = [], []
        if self._thumbs is not None:
            self._thumbs.clear()

    async def flush(self) -> None:
        """One bulk; Elasticsearch names each document it refused (`SinkRefused`), the others
        are written."""
        if not self._items:
            return
        assert self._es is not None, "start() first"
        items, refused = await self._with_thumbnails()
        try:
            await search.index_predictions(self._es, self._s, self._space, items)
        except SinkRefused as e:
            raise self._refused(e) from e
        self.clear()
        if refused:
            raise SinkRefused(f"object store refused {len(refused)} thumbnails", refused)

    async def _with_thumbnails(self) -> tuple[list[search.Indexed], dict[str, str]]:
        """The items to index, each keyframe with its thumbnail's key once its object is
        written (frames whose thumbnail was refused for good left out, and named)."""
        if self._thumbs is None or not self._sources:
            return self._items, {}
        refused = await self._thumbs.write(self._sources)
        written = self._thumbs.written
        items = [
            replace(i, thumbnail=written.get(i.prediction.frame_id))
            for i in self._items
            if i.prediction.frame_id not in refused
        ]
        return items, refused

    async def stop(self) -> None:
        if self._es is not None:
            await self._es.close()
        if self._thumbs is not None:
            await self._thumbs.stop()
