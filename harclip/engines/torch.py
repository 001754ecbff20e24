"""PyTorch engine over the bundle's `hf/` folder (a transformers CLIP), in fp32, fp16 or bf16.

The reference the exported engines are checked against; also the one to use for fine-tuned
weights before export. Imports torch and transformers only when created.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from harclip.engines._checks import check_embeddings, check_images, empty
from harclip.engines._torch_util import check_device, import_torch, set_threads
from harclip.errors import EngineUnavailable, ModelError

_DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}


class TorchEngine:
    """`embed(uint8 [N, S, S, 3]) -> float32 [N, D]` with the transformers CLIP image tower."""

    name = "torch"

    def __init__(
        self,
        hf_dir: Path,
        *,
        image_size: int,
        embed_dim: int,
        mean: Sequence[float],
        std: Sequence[float],
        dtype: str = "fp32",
        device: str = "cpu",
        threads: int = 0,
    ) -> None:
        torch = import_torch(self.name)
        check_device(torch, device, self.name)
        set_threads(torch, threads)
        if dtype not in _DTYPES:
            raise ModelError(f"torch: dtype must be one of {sorted(_DTYPES)}, got {dtype!r}")
        self._torch = torch
        self.image_size = image_size
        self.embed_dim = embed_dim
        self.dtype = dtype
        self.device = device
        self._module: Any = _load(torch, hf_dir, mean, std, getattr(torch, _DTYPES[dtype]), device)

    def embed(self, images: np.ndarray) -> np.ndarray:
        """uint8 [N, S, S, 3] RGB → float32 [N, D], L2-normalised."""
        images = check_images(images, self.image_size, self.name)
        if len(images) == 0:
            return empty(self.embed_dim)
        if self._module is None:
            raise ModelError("torch: engine is closed")
        torch = self._torch
        with torch.inference_mode():
            pixels = torch.from_numpy(images).to(self.device)
            out = self._module(pixels).float().cpu().numpy()
        return check_embeddings(out, len(images), self.embed_dim, self.name)

    def close(self) -> None:
        self._module = None


def _load(
    torch: Any, hf_dir: Path, mean: Sequence[float], std: Sequence[float], dtype: Any, device: str
) -> Any:
    """The image tower wrapped to take uint8 NHWC pixels, as the exported graphs do."""
    try:
        from transformers import CLIPModel

        from harclip.model.wrappers import ImageEncoder
    except ImportError as e:
        raise EngineUnavailable(
            f"engine 'torch' needs transformers and harclip's torch side ({e.name}): "
            "pip install 'harclip[torch]'"
        ) from None
    try:
        clip = CLIPModel.from_pretrained(str(hf_dir), dtype=dtype)
    except (OSError, ValueError) as e:
        raise ModelError(f"torch: cannot load the CLIP in {hf_dir}: {e}") from None
    module = ImageEncoder(clip, mean=mean, std=std)
    return module.to(device).eval()
