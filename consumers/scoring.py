"""The worker's model: the engine (and its GPU JPEG decoder, if any), the head in use and the
feedback adapter after it and the watches in force, which follow `head`, `adapter` and `watches`
records on the control topic between
batches."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from consumers.inference import run_batch
from consumers.metrics import WorkerMetrics
from consumers.work import BatchResult, Work
from harclip.adapt.holder import AdapterHolder
from harclip.batching import Batch
from harclip.config import ModelSettings, Settings
from harclip.control import ADAPTER_KEY, HEAD_KEY, WATCHES_KEY, ControlFollower, HeadHolder
from harclip.engines import Engine, create_engine
from harclip.engines.gpu_decode import TorchDecoder, decoder_for
from harclip.errors import ModelError
from harclip.model.bundle import Bundle
from harclip.watches.holder import WatchHolder


def engine_settings(model: ModelSettings) -> ModelSettings:
    """The settings the worker opens its engine with: `model`, with ONNX Runtime's idle
    intra-op threads not spinning unless `intra_op_spinning` says so. The worker shares two
    cores between the engine, its decode pool and the sinks; spinning pool threads took a third
    of the engine's CPU in the pipeline and slowed it (docs/benchmarks.md)."""
    if model.intra_op_spinning is not None:
        return model
    return model.model_copy(update={"intra_op_spinning": False})


class Scoring:
    """Embeds a batch with the engine and scores it with one snapshot of the current head and
    one of the watches in force (watch scores use the bundle's logit scale)."""

    def __init__(self, settings: Settings, bundle: Bundle, metrics: WorkerMetrics) -> None:
        self._settings = settings
        self._bundle = bundle
        head = bundle.load_head()
        self.heads = HeadHolder(bundle.manifest, head, metrics.control)
        self.adapters = AdapterHolder(bundle.manifest, metrics.control)
        self.watches = WatchHolder(bundle.manifest.embed_dim, head.logit_scale, metrics.control)
        self.control = ControlFollower(
            settings.kafka,
            {
                HEAD_KEY: self.heads.offer_raw,
                ADAPTER_KEY: self.adapters.offer_raw,
                WATCHES_KEY: self.watches.offer_raw,
            },
        )
        self._engine: Engine | None = None
        self.decoder: TorchDecoder | None = None  # JPEGs decoded on the engine's GPU

    @property
    def engine(self) -> Engine:
        assert self._engine is not None, "load() first"
        return self._engine

    def on_change(self, callback: Callable[[], None]) -> None:
        """Call `callback()` after every head, adapter or watches swap."""
        self.heads.on_change(lambda _: callback())
        self.adapters.on_change(callback)
        self.watches.on_change(lambda _: callback())

    def labels(self) -> tuple[str, ...]:
        """The labels served now: the head's, then those the adapter in force adds."""
        a = self.adapters.adapter
        extra = (
            () if a is None else tuple(lb for lb in a.labels if lb not in self.heads.head.labels)
        )
        return self.heads.head.labels + extra

    async def load(self) -> None:
        """Load the engine (`ModelError` when its embeddings do not fit the head)."""
        s = self._settings
        model = engine_settings(s.model)
        engine = await asyncio.to_thread(create_engine, self._bundle, model.engine, model)
        self._engine = engine
        self.heads.use_engine(engine.label)  # every Prediction names the engine
        size = self._bundle.manifest.image_size
        self.decoder = decoder_for(
            engine, size, max_pixels=s.model.max_pixels, enabled=s.model.gpu_decode
        )
        if engine.embed_dim != self.heads.head.embed_dim:
            raise ModelError(f"the head is {self.heads.head.embed_dim}-dim, the engine makes "
                             f"{engine.embed_dim}")  # fmt: skip

    def score(self, batch: Batch[Work]) -> BatchResult:
        """Embed -> head (-> adapter) -> watches for one batch (engine thread), with one head,
        one adapter and one set of watches for the whole batch."""
        return run_batch(
            batch, self.engine, self.heads.current, self._settings.model.top_k,
            adapters=self.adapters, watches=self.watches.current,
        )  # fmt: skip

    async def close(self) -> None:
        await self.control.stop()
        if self._engine is not None:
            self._engine.close()
