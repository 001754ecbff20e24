"""nn.Modules with the bundle's graph contracts (docs/internals.md), exported as they are.

`ImageEncoder`: uint8 [N, S, S, 3] RGB -> float32 [N, D], L2-normalised; the cast, /255,
mean/std and NHWC -> NCHW happen inside, so every engine takes the same uint8 batch. A vision
tower built for a smaller input (a small CLIP trained from scratch) gets its pixels
area-downscaled inside the graph too, so the bundle still takes S×S.
`TextEncoderModule`: input_ids, attention_mask int64 [N, L] -> float32 [N, D], L2-normalised.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn


class ImageEncoder(nn.Module):
    """CLIP's vision tower + projection behind CLIPImageProcessor's normalisation."""

    scale: torch.Tensor  # [1, 3, 1, 1]
    shift: torch.Tensor  # [1, 3, 1, 1]

    def __init__(
        self,
        clip: Any,
        mean: Sequence[float],
        std: Sequence[float],
        input_size: int | None = None,
    ) -> None:
        super().__init__()
        self.vision = clip.vision_model
        self.projection = clip.visual_projection
        self.pool = downscale_factor(input_size, int(clip.config.vision_config.image_size))
        m = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
        s = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
        # (x / 255 - mean) / std folded into one multiply-add
        self.register_buffer("scale", 1.0 / (255.0 * s))
        self.register_buffer("shift", m / s)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        x = pixels.permute(0, 3, 1, 2).float() * self.scale - self.shift  # [N,S,S,3] -> [N,3,S,S]
        if self.pool > 1:
            x = nn.functional.avg_pool2d(x, self.pool)  # [N,3,S,S] -> [N,3,S/pool,S/pool]
        pooled = self.vision(pixel_values=x).pooler_output  # [N, width]
        emb = self.projection(pooled)  # [N, D]
        return nn.functional.normalize(emb, dim=-1)


def downscale_factor(input_size: int | None, vision_size: int) -> int:
    """How many input pixels (per side) the graph averages into one vision-tower pixel: 1 when
    the tower takes the input size (or `input_size` is None), else `input_size / vision_size`,
    which must be a whole number."""
    if input_size is None or input_size == vision_size:
        return 1
    if input_size < vision_size or input_size % vision_size:
        from harclip.errors import ModelError

        raise ModelError(
            f"the vision tower takes {vision_size} px; the input size {input_size} px must be a "
            "whole multiple of it"
        )
    return input_size // vision_size


class TextEncoderModule(nn.Module):
    """CLIP's text tower + projection; pools at the first eos token as transformers does."""

    def __init__(self, clip: Any) -> None:
        super().__init__()
        self.text = clip.text_model
        self.projection = clip.text_projection

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        pooled = self.text(input_ids=input_ids, attention_mask=attention_mask).pooler_output
        return nn.functional.normalize(self.projection(pooled), dim=-1)  # [N, D]


def tokenize(tokenizer: Any, texts: Sequence[str], context_length: int) -> dict[str, torch.Tensor]:
    """transformers tokenisation padded to `context_length` (what text_encoder.onnx receives)."""
    enc = tokenizer(
        list(texts),
        padding="max_length",
        max_length=context_length,
        truncation=True,
        return_tensors="pt",
    )
    return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}
