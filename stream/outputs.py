"""The events app's outputs besides Kafka: each batch of events goes to Elasticsearch (`_id` =
event_id) and Redis (capped event stream, current action) concurrently; a sink that fails with a
retriable error is retried with backoff (only that sink) until it takes the batch, so the agent's
offsets are committed only after both have it. A write a sink refuses for good is logged and
counted, not retried. Both writes are idempotent, so a replayed batch changes nothing."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

import redis.asyncio as aioredis
from elasticsearch import AsyncElasticsearch

from harclip.config import Settings
from harclip.errors import SinkUnavailable
from harclip.io import search, store
from harclip.io.es import make_es
from harclip.io.events import write_outputs, write_stats
from harclip.messages import Event, StreamAction, StreamStats, action_of
from harclip.retry import SINK_RETRY, retry_async
from stream.metrics import StreamMetrics

log = logging.getLogger(__name__)


class Outputs:
    """Redis and Elasticsearch clients of one app worker; opened in `start`, closed in `stop`."""

    def __init__(self, settings: Settings, metrics: StreamMetrics) -> None:
        self._s = settings
        self._m = metrics
        self._redis: aioredis.Redis | None = None
        self._es: AsyncElasticsearch | None = None
        self.failing: dict[str, str] = {}  # sink -> last error, while it fails

    async def start(self) -> None:
        if self._s.redis.enabled:
            self._redis = store.make_redis(self._s.redis)
        if self._s.elasticsearch.enabled:
            self._es = make_es(self._s.elasticsearch)

    async def stop(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()
        if self._es is not None:
            await self._es.close()

    async def write(self, events: Sequence[Event]) -> None:
        """Write `events` to every enabled sink; returns once each took them (or refused them
        for good)."""
        if not events:
            return
        actions: dict[str, StreamAction] = {}
        for e in events:
            a = action_of(e) if e.evidence is None else None  # an update sets no action
            if a is not None:
                actions[e.stream_id] = a
        jobs: dict[str, Callable[[], Awaitable[None]]] = {}
        if self._redis is not None:
            r = self._redis
            maxlen = self._s.stream.events_maxlen
            jobs["redis"] = lambda: write_outputs(r, self._s.redis, events, actions, maxlen=maxlen)
        if self._es is not None:
            es = self._es
            jobs["elasticsearch"] = lambda: search.index_events(es, self._s.elasticsearch, events)
        await asyncio.gather(*(self._until_done(name, job) for name, job in jobs.items()))
        self._m.outputs.inc(len(events))

    async def write_stats(self, stats: Sequence[StreamStats]) -> bool:
        """Replace the streams' statistics in Redis; False (logged, counted) when it failed."""
        if self._redis is None or not stats:
            return True
        try:
            await write_stats(self._redis, self._s.redis, stats)
        except SinkUnavailable as e:
            self._m.sink_errors.labels("redis").inc()
            log.warning("statistics not written to Redis (%s); next flush tries again", e)
            return False
        return True

    async def _until_done(self, sink: str, job: Callable[[], Awaitable[None]]) -> None:
        def failed(e: Exception, pause_s: float) -> None:
            self._m.sink_errors.labels(sink).inc()
            if sink not in self.failing:
                log.warning("%s failed (%s); retrying with backoff", sink, e)
            self.failing[sink] = str(e)

        try:
            await retry_async(job, SINK_RETRY, retry_on=_sink_retriable, on_retry=failed)
        except SinkUnavailable as e:  # not retriable: refused for good
            self._m.sink_errors.labels(sink).inc()
            log.error("%s refused events for good (not retried): %s", sink, e)
        self.failing.pop(sink, None)


def _sink_retriable(e: Exception) -> bool:
    return isinstance(e, SinkUnavailable) and e.retriable
