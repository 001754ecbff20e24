"""Engines: one interface over ONNX Runtime, TensorRT, PyTorch and TorchScript.

`embed(uint8 [N, S, S, 3] RGB) -> float32 [N, D]`, L2-normalised; resize and crop happen before
(harclip.model.preprocess), mean/std normalisation inside the engine. `create_engine` picks the
backend by name and imports its runtime only then, so torch, TensorRT and CUDA stay optional;
`auto` (harclip.engines.auto) picks the fastest engine the bundle validated for this machine.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

from harclip.config import EngineChoice, EngineName, ModelSettings
from harclip.errors import ModelError

if TYPE_CHECKING:
    from harclip.model.bundle import Bundle

log = logging.getLogger(__name__)

ENGINE_NAMES: tuple[EngineName, ...] = ("onnx", "onnx-int8", "torchscript", "torch", "tensorrt")
ENGINE_CHOICES: tuple[EngineChoice, ...] = ("auto", *ENGINE_NAMES)


@runtime_checkable
class Engine(Protocol):
    """An image tower ready to run; one instance per process (not shared across processes)."""

    name: str
    label: str  # name plus what tells two runs of it apart: "onnx/cuda", "torch/fp16/cuda"
    embed_dim: int
    image_size: int

    def embed(self, images: np.ndarray) -> np.ndarray:
        """uint8 [N, S, S, 3] RGB → float32 [N, D], L2-normalised; `ModelError` on bad input."""
        ...

    def close(self) -> None:
        """Free the runtime's resources; the engine is unusable afterwards."""
        ...


def create_engine(bundle: Bundle, name: EngineChoice, settings: ModelSettings) -> Engine:
    """The engine `name` over `bundle`'s files; `EngineUnavailable` when its runtime is missing,
    `ModelError` when the bundle has no file for it. `auto` logs which engine it chose and why."""
    if name == "auto":
        from harclip.engines.auto import open_auto

        engine, reason = open_auto(bundle, settings)
        log.info("engine auto: %s (%s)", engine.label, reason)
        return engine
    size, dim = bundle.manifest.image_size, bundle.manifest.embed_dim
    if name in ("onnx", "onnx-int8"):
        from harclip.engines.onnx import OnnxEngine

        return OnnxEngine(
            bundle.engine_file(name),
            name=name,
            image_size=size,
            embed_dim=dim,
            providers=settings.providers,
            intra_op_threads=settings.intra_op_threads,
        )
    if name == "torchscript":
        from harclip.engines.auto import resolve_device
        from harclip.engines.torchscript import TorchScriptEngine

        return TorchScriptEngine(
            bundle.engine_file(name),
            image_size=size,
            embed_dim=dim,
            device=resolve_device(settings.device),
            threads=settings.intra_op_threads,
        )
    if name == "torch":
        from harclip.engines.auto import resolve_device
        from harclip.engines.torch import TorchEngine

        return TorchEngine(
            bundle.engine_file(name),
            image_size=size,
            embed_dim=dim,
            mean=tuple(bundle.manifest.mean),
            std=tuple(bundle.manifest.std),
            dtype=settings.torch_dtype,
            device=resolve_device(settings.device),
            threads=settings.intra_op_threads,
        )
    if name == "tensorrt":
        from harclip.engines.tensorrt import TensorRTEngine, require_runtime

        require_runtime()  # say what to install before saying which file is missing
        precision = settings.tensorrt_precision
        return TensorRTEngine(
            bundle.engine_file(name, precision),
            image_size=size,
            embed_dim=dim,
            precision=precision,
        )
    raise ModelError(f"unknown engine {name!r}; choose one of {', '.join(ENGINE_NAMES)}")
