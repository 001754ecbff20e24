"""TorchScript engine over `encoder.ts`: `forward(pixels uint8 [N, S, S, 3]) -> [N, D]`."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

from harclip.engines._checks import check_embeddings, check_images, empty
from harclip.engines._torch_util import check_device, import_torch, set_threads
from harclip.errors import ModelError


class TorchScriptEngine:
    """The exported TorchScript image tower (normalisation inside), on CPU or CUDA."""

    name = "torchscript"

    def __init__(
        self, path: Path, *, image_size: int, embed_dim: int, device: str = "cpu", threads: int = 0
    ) -> None:
        self._torch = import_torch(self.name)
        check_device(self._torch, device, self.name)
        set_threads(self._torch, threads)
        self.image_size = image_size
        self.embed_dim = embed_dim
        self.device = device
        try:
            with warnings.catch_warnings():  # torch 2.10+: "torch.jit.load is deprecated"
                warnings.filterwarnings("ignore", "`torch.jit.load` is deprecated", FutureWarning)
                module = self._torch.jit.load(str(path), map_location=device)
        except (RuntimeError, ValueError, OSError) as e:
            raise ModelError(f"torchscript: cannot load {path}: {e}") from None
        self._module: Any = module.eval()

    def embed(self, images: np.ndarray) -> np.ndarray:
        """uint8 [N, S, S, 3] RGB → float32 [N, D], L2-normalised."""
        images = check_images(images, self.image_size, self.name)
        if len(images) == 0:
            return empty(self.embed_dim)
        if self._module is None:
            raise ModelError("torchscript: engine is closed")
        torch = self._torch
        with torch.inference_mode():
            pixels = torch.from_numpy(images).to(self.device)
            out = self._module(pixels).float().cpu().numpy()
        return check_embeddings(out, len(images), self.embed_dim, self.name)

    def close(self) -> None:
        self._module = None
