"""The API's service clients: Redis (and the live feeds that read it), Elasticsearch, the Kafka
producer, the object store (evidence) and the URL fetcher. Each connects on first use (predict
needs none of them); the app's lifespan opens the URL fetcher and closes them all (see
`api.runtime`)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Literal

from api import urlfetch
from api.feeds import Feed, Source
from api.metrics import ApiMetrics
from harclip.config import Settings
from harclip.io.indices import EmbeddingSpace
from harclip.urlguard import UrlFetchFailed, UrlNotAllowed
from harclip.wire import ApiError

if TYPE_CHECKING:
    import httpx
    from aiokafka import AIOKafkaProducer
    from elasticsearch import AsyncElasticsearch
    from redis.asyncio import Redis

    from harclip.io.kafka import RenewingProducer
    from harclip.io.objects import ObjectStore

FeedKind = Literal["predictions", "events"]


class Clients:
    """The clients of one API process, opened lazily, closed by `close()`."""

    def __init__(self, settings: Settings, space: EmbeddingSpace, metrics: ApiMetrics) -> None:
        self.settings = settings
        self._space = space  # the model's: search indexes are per embedding space
        self._metrics = metrics
        a = settings.api
        self.fetch_policy = urlfetch.FetchPolicy(
            timeout_s=a.url_fetch_timeout_s,
            max_redirects=a.url_max_redirects,
            max_bytes=a.max_body_bytes,
            allow_loopback=a.url_allow_loopback,
        )
        self._http: httpx.AsyncClient | None = None
        self._redis: Redis | None = None
        self._feeds: dict[FeedKind, Feed] = {}
        self._es: AsyncElasticsearch | None = None
        self._es_lock = asyncio.Lock()
        self._templates_ok = False
        self._producer: RenewingProducer | None = None
        self._producer_lock = asyncio.Lock()
        self._objects: ObjectStore | None = None
        self._objects_lock = asyncio.Lock()

    def open_fetcher(self) -> None:
        self._http = urlfetch.make_client(self.fetch_policy)

    async def close_producer(self) -> None:
        if self._producer is not None:
            await self._producer.stop()

    async def close(self) -> None:
        """Close every client opened (the producer first: `close_producer`)."""
        if self._http is not None:
            await self._http.aclose()
        for feed in self._feeds.values():
            await feed.close()
        if self._redis is not None:
            await self._redis.aclose()
        if self._es is not None:
            await self._es.close()
        if self._objects is not None:
            await self._objects.close()

    async def fetch_url(self, url: str) -> bytes:
        if self._http is None:
            raise ApiError(503, "unavailable", "the API is not started yet")
        try:
            return await urlfetch.fetch(url, self.fetch_policy, self._http)
        except UrlNotAllowed as e:
            raise ApiError(400, "url_not_allowed", str(e)) from None
        except urlfetch.UrlTooLarge as e:
            raise ApiError(413, "payload_too_large", str(e)) from None
        except UrlFetchFailed as e:
            raise ApiError(422, "url_fetch_failed", str(e)) from None

    def redis(self) -> Redis:
        if not self.settings.redis.enabled:
            raise ApiError(503, "unavailable", "Redis is turned off (HARCLIP_REDIS__ENABLED)")
        if self._redis is None:
            from harclip.io.store import make_redis

            self._redis = make_redis(self.settings.redis)
        return self._redis

    def es(self) -> AsyncElasticsearch:
        if not self.settings.elasticsearch.enabled:
            raise ApiError(
                503, "unavailable", "Elasticsearch is turned off (HARCLIP_ELASTICSEARCH__ENABLED)"
            )
        if self._es is None:
            from harclip.io.es import make_es

            self._es = make_es(self.settings.elasticsearch)
        return self._es

    async def objects(self) -> ObjectStore:
        """The object store of evidence and thumbnails, connected on first use (a failed start
        is retried by the next request)."""
        if not self.settings.objects.enabled:
            raise ApiError(
                503, "unavailable", "the object store is turned off (HARCLIP_OBJECTS__ENABLED)"
            )
        async with self._objects_lock:
            if self._objects is None:
                from harclip.io.objects import ObjectStore

                store = ObjectStore(self.settings.objects)
                try:
                    await store.start()
                except BaseException:
                    await store.close()
                    raise
                self._objects = store
            return self._objects

    async def feed(self, kind: FeedKind) -> Feed:
        """The shared live feed of `kind` (one Redis reader for all its subscribers)."""
        if kind not in self._feeds:
            self._feeds[kind] = Feed(self.redis(), _source(kind, self.settings), self._count_sent)
        return self._feeds[kind]

    def _count_sent(self, offered: int, dropped: int) -> None:
        self._metrics.ws_sent.inc(offered - dropped)
        self._metrics.ws_dropped.inc(dropped)

    async def search_client(self) -> AsyncElasticsearch:
        """The Elasticsearch client, with the index templates and the feedback index put once
        (idempotent)."""
        es = self.es()
        async with self._es_lock:
            if not self._templates_ok:
                from harclip.io.feedback import ensure_feedback_index
                from harclip.io.indices import ensure_templates

                await ensure_templates(es, self.settings.elasticsearch, self._space)
                await ensure_feedback_index(es, self.settings.elasticsearch)
                self._templates_ok = True
        return es

    async def frame_producer(self) -> RenewingProducer:
        """The Kafka producer of ingested frames (renewed after a broker restart breaks its
        sequence), started on first use (predict needs no Kafka)."""
        async with self._producer_lock:
            if self._producer is None:
                from harclip.io.topics import start_frame_producer

                self._producer = await start_frame_producer(self.settings.kafka, role="live")
            return self._producer

    async def producer(self) -> AIOKafkaProducer:
        """The current Kafka producer (control records: labels, rules)."""
        return (await self.frame_producer()).producer


def _source(kind: FeedKind, settings: Settings) -> Source:
    from harclip.io import events, store
    from harclip.io.keys import redis_keys

    r = settings.redis
    k = redis_keys(r)
    if kind == "predictions":

        async def streams(redis: Redis) -> list[str]:
            return [sid for sid, _ in await store.list_streams(redis, r)]

        return Source("subscribe", "prediction", "prediction", store.RECENT_FIELD, k.recent,
                      k.stream_of_recent, streams)  # fmt: skip

    async def event_streams(redis: Redis) -> list[str]:
        return await events.list_event_streams(redis, r)

    return Source("events", "event", "event", events.EVENT_FIELD, k.events, k.stream_of_events,
                  event_streams)  # fmt: skip
