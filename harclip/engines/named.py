"""Opening one named engine (not `auto`) over a bundle's files, importing its runtime only then
(torch, TensorRT and CUDA stay optional)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from harclip.config import EngineName, ModelSettings
from harclip.engines.base import ENGINE_NAMES, Engine
from harclip.engines.device import resolve_device
from harclip.errors import ModelError

if TYPE_CHECKING:
    from harclip.model.bundle import Bundle


def open_named(bundle: Bundle, name: EngineName, settings: ModelSettings) -> Engine:
    """The engine `name` over `bundle`'s files; `EngineUnavailable` when its runtime is missing,
    `ModelError` when the bundle has no file for it."""
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
            spinning=settings.intra_op_spinning is not False,
        )
    if name == "torchscript":
        from harclip.engines.torchscript import TorchScriptEngine

        return TorchScriptEngine(
            bundle.engine_file(name),
            image_size=size,
            embed_dim=dim,
            device=resolve_device(settings.device),
            threads=settings.intra_op_threads,
        )
    if name == "torch":
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
