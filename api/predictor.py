"""The API's predict path: the engine and the current head, the shared micro-batcher, the decode
pool and the text encoder. Started and closed by the app's lifespan (see `api.runtime`)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from api.limits import check_image
from api.metrics import ApiMetrics
from harclip.adapt.holder import AdapterHolder
from harclip.batching import MicroBatcher
from harclip.config import ModelSettings, Settings
from harclip.control import HeadHolder
from harclip.errors import DecodeError, Overloaded
from harclip.io.indices import EmbeddingSpace
from harclip.messages import ModelRef
from harclip.model.imageio import ImageHeader
from harclip.wire import ApiError

if TYPE_CHECKING:
    from harclip.engines import Engine
    from harclip.model.bundle import Bundle
    from harclip.model.text import TextEncoder

T = TypeVar("T")

# A lone upload is checked on the event loop only when it is this small (a bounded header walk,
# ~0.1 ms), and decoded there only when its header also says at most `api.inline_decode_pixels`.
INLINE_DECODE_BYTES = 256 * 1024


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


class Predictor:
    """Images -> predictions through one engine and one micro-batcher. `start()` loads the
    engine; until then `predict` answers 503."""

    def __init__(self, settings: Settings, bundle: Bundle, metrics: ApiMetrics) -> None:
        self.settings = settings
        self.bundle = bundle
        self._metrics = metrics
        self.heads = HeadHolder(bundle.manifest, bundle.load_head(), metrics.control)
        self.adapters = AdapterHolder(bundle.manifest, metrics.control)
        self.engine: Engine | None = None
        self._decode_pool = ThreadPoolExecutor(
            settings.batching.decode_threads, thread_name_prefix="api-decode"
        )
        self._batcher: MicroBatcher[_Job, _Done] | None = None
        self._text: TextEncoder | None = None
        self._text_lock = asyncio.Lock()

    @property
    def space(self) -> EmbeddingSpace:
        """The embedding space of this API's model: text and example search query it only."""
        return space_of(self.bundle)

    async def start(self) -> None:
        from harclip.engines import create_engine

        s = self.settings
        single_threaded_decoding()
        model = api_model_settings(s.model)
        self.engine = await asyncio.to_thread(create_engine, self.bundle, model.engine, model)
        self.heads.use_engine(self.engine.label)  # `auto` resolved: Predictions name the engine
        self._batcher = MicroBatcher(
            self._run_batch,
            max_size=s.batching.max_batch,
            max_wait_s=s.api.batch_wait_ms / 1000,
            on_batch=self._metrics.batch_size.observe,
            max_queue=s.api.max_queued_images,
        )
        await self._batcher.start()

    async def close(self) -> None:
        """Stop batching (after the lifespan stopped the control follower)."""
        if self._batcher is not None:
            await self._batcher.close()

    def close_engine(self) -> None:
        """Free the engine and the decode pool (last, after every client closed)."""
        if self.engine is not None:
            self.engine.close()
        self._decode_pool.shutdown(wait=False, cancel_futures=True)

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
        # [N, D] -> N × k_max, best first; an image has no stream: the adapter's "*" scope
        top, models = self.adapters.top_k(in_use, emb, [""] * len(jobs), max(j.k for j in jobs))
        infer_ms = (time.perf_counter() - start) * 1000
        return [
            _Done(row[: j.k], m, e, start, infer_ms)
            for j, row, m, e in zip(jobs, top, models, emb, strict=True)
        ]

    async def predict(self, images: Sequence[tuple[str, bytes]], k: int) -> list[Scored]:
        """Named encoded images -> one result each (its `k` best labels), in order; the whole
        request fails (422/415 naming the image) if any image is not usable. Header checks and
        decoding run in the decode pool, except a lone small image's (`_decode_all`)."""
        size, max_pixels = self.bundle.manifest.image_size, self.settings.model.max_pixels
        batcher = self._running_batcher()
        if not batcher.has_room(len(images)):  # refuse before decoding anything
            raise Overloaded(f"{batcher.queued} images wait for the engine; try again shortly")
        start = time.perf_counter()
        decoded = await self._decode_all(images, size, max_pixels)
        submitted = time.perf_counter()
        done = await batcher.submit_many([_Job(img, k) for img in decoded])
        decode_ms = (submitted - start) * 1000
        self._metrics.images.inc(len(images))
        return [
            Scored(d.top_k, d.model, d.embedding, decode_ms,
                   max(0.0, (d.batch_start - submitted) * 1000), d.infer_ms)
            for d in done
        ]  # fmt: skip

    async def _decode_all(
        self, images: Sequence[tuple[str, bytes]], size: int, max_pixels: int
    ) -> list[np.ndarray]:
        """Every image checked and decoded: a lone small one (`INLINE_DECODE_BYTES`, and
        `api.inline_decode_pixels`: at most ~1 ms, a 640x480 JPEG decodes in ~0.6 ms here) on
        the event loop, which costs less than
        a hand-off to the decode pool and back when the cores are busy; larger images, and
        requests with several, in the decode pool, in parallel."""
        if len(images) == 1 and len(images[0][1]) <= INLINE_DECODE_BYTES:
            name, data = images[0]
            header = check_image(data, max_pixels=max_pixels, name=name)  # µs: header only
            if header.pixels <= self.settings.api.inline_decode_pixels:
                return [_decode(name, data, size, max_pixels, header)]
        return list(
            await asyncio.gather(
                *(self.in_pool(_decode, name, data, size, max_pixels) for name, data in images)
            )
        )

    def _running_batcher(self) -> MicroBatcher[_Job, _Done]:
        if self._batcher is None:
            raise ApiError(503, "unavailable", "the model is not loaded yet")
        return self._batcher

    async def in_pool(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(*args)` in the decode pool: header checks, base64 and decoding of anything large
        never run on the event loop (which must answer /health and every other request)."""
        return await asyncio.get_running_loop().run_in_executor(self._decode_pool, fn, *args)


def api_model_settings(model: ModelSettings) -> ModelSettings:
    """The model settings the API's engine runs with: ONNX Runtime's intra-op threads sleep when
    idle unless `intra_op_spinning` says otherwise. Spinning threads keep a core busy after every
    operator, the core the event loop, the decode pool and the next request need on a small
    machine (docs/benchmarks.md, "API request path")."""
    if model.intra_op_spinning is None:
        return model.model_copy(update={"intra_op_spinning": False})
    return model


def single_threaded_decoding() -> None:
    """OpenCV decodes and resizes on one thread in the API process. Its own worker threads
    (two here) would wait actively for the engine's threads on the same cores, and a decode on
    the event loop would wait for them; the decode pool gives the parallelism where there is
    any to have (a photo's resize to 224 px takes a fraction of a millisecond either way)."""
    import cv2

    cv2.setNumThreads(1)


def space_of(bundle: Bundle) -> EmbeddingSpace:
    """The embedding space of `bundle`'s model (Elasticsearch indexes embeddings per space)."""
    m = bundle.manifest
    return EmbeddingSpace(m.name, str(m.version), m.embed_dim)


def _decode(
    name: str, data: bytes, size: int, max_pixels: int, header: ImageHeader | None = None
) -> np.ndarray:
    """Check and decode one image (in the decode pool, or on the loop when small); `ApiError`
    415/422 naming it. `header`: what `check_image` already returned for these bytes."""
    from harclip.model.preprocess import decode_image

    if header is None:
        header = check_image(data, max_pixels=max_pixels, name=name)
    try:
        return decode_image(data, size, max_pixels=max_pixels, header=header)
    except DecodeError as e:
        raise ApiError(422, "invalid_image", f"{name}: {e}") from None
