"""The engine interface: `Engine` (what every backend implements) and the engine names."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from harclip.config import EngineChoice, EngineName

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
