"""Engines: one interface over ONNX Runtime, TensorRT, PyTorch and TorchScript.

`embed(uint8 [N, S, S, 3] RGB) -> float32 [N, D]`, L2-normalised; resize and crop happen before
(harclip.model.preprocess), mean/std normalisation inside the engine. `create_engine` picks the
backend by name and imports its runtime only then, so torch, TensorRT and CUDA stay optional;
`auto` (harclip.engines.auto) picks the fastest engine the bundle validated for this machine.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from harclip.config import EngineChoice, ModelSettings
from harclip.engines.auto import open_auto
from harclip.engines.base import ENGINE_CHOICES, ENGINE_NAMES, Engine
from harclip.engines.named import open_named

if TYPE_CHECKING:
    from harclip.model.bundle import Bundle

log = logging.getLogger(__name__)

__all__ = ["ENGINE_CHOICES", "ENGINE_NAMES", "Engine", "create_engine"]


def create_engine(bundle: Bundle, name: EngineChoice, settings: ModelSettings) -> Engine:
    """The engine `name` over `bundle`'s files; `EngineUnavailable` when its runtime is missing,
    `ModelError` when the bundle has no file for it. `auto` logs which engine it chose and why."""
    if name == "auto":
        engine, reason = open_auto(bundle, settings)
        log.info("engine auto: %s (%s)", engine.label, reason)
        return engine
    return open_named(bundle, name, settings)
