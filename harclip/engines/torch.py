"""PyTorch engine over the bundle's `hf/` folder (a transformers CLIP), in fp32, fp16 or bf16.

The reference the exported engines are checked against; also the one to use for fine-tuned
weights before export. Imports torch and transformers only when created.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harclip.engines._torch_util import TorchModuleEngine
from harclip.errors import EngineUnavailable, ModelError

_DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}


class TorchEngine(TorchModuleEngine):
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
        super().__init__(image_size=image_size, embed_dim=embed_dim, device=device, threads=threads)
        if dtype not in _DTYPES:
            raise ModelError(f"torch: dtype must be one of {sorted(_DTYPES)}, got {dtype!r}")
        self.dtype = dtype
        self.label = f"torch/{dtype}/{device}"
        torch = self._torch
        self._module = _load(
            torch, hf_dir, mean, std, getattr(torch, _DTYPES[dtype]), device, image_size
        )


def _load(
    torch: Any,
    hf_dir: Path,
    mean: Sequence[float],
    std: Sequence[float],
    dtype: Any,
    device: str,
    image_size: int,
) -> Any:
    """The image tower wrapped to take uint8 NHWC pixels, as the exported graphs do."""
    try:
        from transformers import CLIPModel

        from harclip.clip.wrappers import ImageEncoder
    except ImportError as e:
        raise EngineUnavailable(
            f"engine 'torch' needs transformers and harclip's torch side ({e.name}): "
            "pip install 'harclip[torch]'"
        ) from None
    try:
        clip = CLIPModel.from_pretrained(str(hf_dir), dtype=dtype)
    except (OSError, ValueError) as e:
        raise ModelError(f"torch: cannot load the CLIP in {hf_dir}: {e}") from None
    module = ImageEncoder(clip, mean=mean, std=std, input_size=image_size)
    return module.to(device).eval()
