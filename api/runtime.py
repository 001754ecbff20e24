"""What the API holds while it runs: the engine and current head, the shared micro-batcher, the
Redis / Elasticsearch / Kafka clients and the URL fetcher. Built by `create_app`, started and
stopped by the app's lifespan; routes (HTTP and WebSocket) take it as a `RuntimeDep` parameter."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar

import numpy as np
import orjson
from fastapi import Depends
from starlette.requests import HTTPConnection

from api import urlfetch
from api.auth import Authenticator
from api.feeds import Feed, Source
from api.limits import check_image
from api.metrics import ApiMetrics
from api.overload import ConcurrencyLimit
from harclip.batching import MicroBatcher
from harclip.config import Settings
from harclip.control import HEAD_KEY, RULES_KEY, ControlFollower, HeadHolder
from harclip.errors import DecodeError, Overloaded, Unavailable
from harclip.io.indices import EmbeddingSpace
from harclip.messages import ModelRef
from harclip.rules import Rules, RulesError
from harclip.urlguard import UrlFetchFailed, UrlNotAllowed
from harclip.wire import ApiError

if TYPE_CHECKING:
    import httpx
    from aiokafka import AIOKafkaProducer
    from elasticsearch import AsyncElasticsearch
    from redis.asyncio import Redis

    from harclip.engines import Engine
    from harclip.io.kafka import RenewingProducer
    from harclip.model.bundle import Bundle
    from harclip.model.text import TextEncoder

log = logging.getLogger(__name__)

FeedKind = Literal["predictions", "events"]
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class _Job:
    """One image waiting for a batch: its pixels and how many labels its caller wants."""

    pixels: np.ndarray  # uint8 [S, S, 3]
    k: int


@dataclass(frozen=True, slots=True)
class _Done:
    """One image's result from its batch (computed in the engine thread)."""

    top_k: list[tuple[str, float]]  # best first
    model: ModelRef  # the model and head of the batch
    embedding: np.ndarray  # float32 [D], L2-normalised
    batch_start: float  # perf_counter seconds
    infer_ms: float


@dataclass(frozen=True, slots=True)
class Scored:
    """One image's prediction: top-k (best first), the model and head that made it, its
    embedding, and the timings the API reports (ms)."""

    top_k: list[tuple[str, float]]
    model: ModelRef
    embedding: np.ndarray  # float32 [D]
    decode_ms: float
    queue_ms: float
    infer_ms: float


class Runtime:
    """The API's long-lived state. `start()` loads the engine; clients connect lazily."""

    def __init__(self, settings: Settings, bundle: Bundle) -> None:
        self.settings = settings
        self.bundle = bundle
        self.metrics = ApiMetrics()
        self.auth = Authenticator(settings.auth)
        self.heads = HeadHolder(bundle.manifest, bundle.load_head(), self.metrics.control)
        # the newest valid `rules` record on harclip.control: (rules, updated_at ms)
        self.rules: tuple[Rules, int] | None = None
        self._control = ControlFollower(
            settings.kafka, {HEAD_KEY: self.heads.offer_raw, RULES_KEY: self._on_rules}
        )
        self._control_stop = asyncio.Event()
        self.engine: Engine | None = None
        self.fetch_policy = urlfetch.FetchPolicy(
            timeout_s=settings.api.url_fetch_timeout_s,
            max_redirects=settings.api.url_max_redirects,
            max_bytes=settings.api.max_body_bytes,
            allow_loopback=settings.api.url_allow_loopback,
        )
        self._decode_pool = ThreadPoolExecutor(
            settings.batching.decode_threads, thread_name_prefix="api-decode"
        )
        self.predicts = ConcurrencyLimit(settings.api.max_concurrent_predicts)
        self._batcher: MicroBatcher[_Job, _Done] | None = None
        self._text: TextEncoder | None = None
        self._text_lock = asyncio.Lock()
        self._http: httpx.AsyncClient | None = None
        self._redis: Redis | None = None
        self._feeds: dict[FeedKind, Feed] = {}
        self._es: AsyncElasticsearch | None = None
        self._producer: RenewingProducer | None = None
        self._producer_lock = asyncio.Lock()
        self._control_task: asyncio.Task[None] | None = None
        self._es_lock = asyncio.Lock()
        self._templates_ok = False

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        from harclip.engines import create_engine

        s = self.settings
        self.engine = await asyncio.to_thread(create_engine, self.bundle, s.model.engine, s.model)
        self.heads.use_engine(self.engine.label)  # `auto` resolved: Predictions name the engine
        self._batcher = MicroBatcher(
            self._run_batch,
            max_size=s.batching.max_batch,
            max_wait_s=s.api.batch_wait_ms / 1000,
            on_batch=self.metrics.batch_size.observe,
            max_queue=s.api.max_queued_images,
        )
        await self._batcher.start()
        self._http = urlfetch.make_client(self.fetch_policy)
        if s.api.follow_control:
            await self._catch_up_control()
            self._control_task = asyncio.create_task(
                self._control.run(self._control_stop), name="api-control"
            )

    async def _catch_up_control(self) -> None:
        """Serve the newest head from the first answer on; without Kafka, the bundle's head
        (predict needs no Kafka) until the follower reaches it."""
        try:
            await self._control.catch_up(timeout_s=self.settings.api.control_catch_up_s)
        except Unavailable as e:
            log.warning("serving head v%d of the bundle for now: %s", self.heads.head.version, e)

    def _on_rules(self, raw: bytes) -> None:
        """A `rules` record: kept if valid (as the events app does), else refused and logged."""
        try:
            self.rules = Rules.from_control(raw), int(orjson.loads(raw).get("updated_at", 0))
        except (RulesError, TypeError, ValueError) as e:  # e.g. updated_at not a number
            log.warning("rules record refused: %s", e)

    async def close(self) -> None:
        self._control_stop.set()
        if self._control_task is not None:
            await asyncio.gather(self._control_task, return_exceptions=True)
        await self._control.stop()
        if self._batcher is not None:
            await self._batcher.close()
        if self._producer is not None:
            await self._producer.stop()
        if self._http is not None:
            await self._http.aclose()
        for feed in self._feeds.values():
            await feed.close()
        if self._redis is not None:
            await self._redis.aclose()
        if self._es is not None:
            await self._es.close()
        if self.engine is not None:
            self.engine.close()
        self._decode_pool.shutdown(wait=False, cancel_futures=True)

    # -- model ---------------------------------------------------------------------------------

    async def text_encoder(self) -> TextEncoder:
        async with self._text_lock:
            if self._text is None:
                self._text = await asyncio.to_thread(self.bundle.text_encoder)
            return self._text

    def _run_batch(self, jobs: Sequence[_Job]) -> list[_Done]:
        """The engine thread's work for one batch, as in the worker: embed, then score with one
        head snapshot (`heads.current`), whose model reference every result carries."""
        assert self.engine is not None
        in_use = self.heads.current  # read once: the whole batch uses one head
        start = time.perf_counter()
        emb = self.engine.embed(np.stack([j.pixels for j in jobs]))  # [N, S, S, 3] -> [N, D]
        top = in_use.head.top_k(emb, max(j.k for j in jobs))  # [N, D] -> N × k_max, best first
        infer_ms = (time.perf_counter() - start) * 1000
        return [
            _Done(row[: j.k], in_use.model, e, start, infer_ms)
            for j, row, e in zip(jobs, top, emb, strict=True)
        ]

    async def predict(self, images: Sequence[tuple[str, bytes]], k: int) -> list[Scored]:
        """Named encoded images -> one result each (its `k` best labels), in order; the whole
        request fails (422/415 naming the image) if any image is not usable. Header checks and
        decoding run in the decode pool, never on the event loop."""
        size, max_pixels = self.bundle.manifest.image_size, self.settings.model.max_pixels
        batcher = self._running_batcher()
        if not batcher.has_room(len(images)):  # refuse before decoding anything
            raise Overloaded(f"{batcher.queued} images wait for the engine; try again shortly")
        start = time.perf_counter()
        decoded = await asyncio.gather(
            *(self.in_pool(_decode, name, data, size, max_pixels) for name, data in images)
        )
        submitted = time.perf_counter()
        done = await batcher.submit_many([_Job(img, k) for img in decoded])
        decode_ms = (submitted - start) * 1000
        self.metrics.images.inc(len(images))
        return [
            Scored(d.top_k, d.model, d.embedding, decode_ms,
                   max(0.0, (d.batch_start - submitted) * 1000), d.infer_ms)
            for d in done
        ]  # fmt: skip

    def _running_batcher(self) -> MicroBatcher[_Job, _Done]:
        if self._batcher is None:
            raise ApiError(503, "unavailable", "the model is not loaded yet")
        return self._batcher

    async def in_pool(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(*args)` in the decode pool: header checks, base64 and decoding never run on the
        event loop (which must answer /health and every other request meanwhile)."""
        return await asyncio.get_running_loop().run_in_executor(self._decode_pool, fn, *args)

    # -- clients -------------------------------------------------------------------------------

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

    async def feed(self, kind: FeedKind) -> Feed:
        """The shared live feed of `kind` (one Redis reader for all its subscribers)."""
        if kind not in self._feeds:
            self._feeds[kind] = Feed(self.redis(), _source(kind, self.settings), self._count_sent)
        return self._feeds[kind]

    def _count_sent(self, offered: int, dropped: int) -> None:
        self.metrics.ws_sent.inc(offered - dropped)
        self.metrics.ws_dropped.inc(dropped)

    @property
    def space(self) -> EmbeddingSpace:
        """The embedding space of this API's model: text and example search query it only."""
        m = self.bundle.manifest
        return EmbeddingSpace(m.name, str(m.version), m.embed_dim)

    async def search_client(self) -> AsyncElasticsearch:
        """The Elasticsearch client, with the index templates put once (idempotent)."""
        es = self.es()
        async with self._es_lock:
            if not self._templates_ok:
                from harclip.io.indices import ensure_templates

                await ensure_templates(es, self.settings.elasticsearch, self.space)
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


def _decode(name: str, data: bytes, size: int, max_pixels: int) -> np.ndarray:
    """Check and decode one image (in the decode pool); `ApiError` 415/422 naming it."""
    from harclip.model.preprocess import decode_image

    check_image(data, max_pixels=max_pixels, name=name)
    try:
        return decode_image(data, size, max_pixels=max_pixels)
    except DecodeError as e:
        raise ApiError(422, "invalid_image", f"{name}: {e}") from None


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


def get_runtime(conn: HTTPConnection) -> Runtime:
    """The FastAPI dependency that gives a route (HTTP or WebSocket) the app's `Runtime`."""
    rt: Runtime = conn.app.state.runtime
    return rt


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
