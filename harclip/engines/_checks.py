"""Input and output checks every engine applies, so all backends fail the same way."""

from __future__ import annotations

import numpy as np

from harclip.errors import ModelError


def check_images(images: object, image_size: int, engine: str) -> np.ndarray:
    """`images` must be uint8 [N, S, S, 3]; returns it C-contiguous. `ModelError` otherwise."""
    if not isinstance(images, np.ndarray):
        raise ModelError(f"{engine}: expected a numpy array, got {type(images).__name__}")
    expected = (image_size, image_size, 3)
    if images.ndim != 4 or images.shape[1:] != expected:
        raise ModelError(
            f"{engine}: expected images of shape [N, {image_size}, {image_size}, 3], "
            f"got {list(images.shape)}"
        )
    if images.dtype != np.uint8:
        raise ModelError(f"{engine}: expected uint8 pixels (0-255 RGB), got {images.dtype}")
    return np.ascontiguousarray(images)


def check_embeddings(out: np.ndarray, rows: int, embed_dim: int, engine: str) -> np.ndarray:
    """The engine's output must be [rows, D] and finite; returned as float32."""
    if out.ndim != 2 or out.shape[0] != rows:
        raise ModelError(
            f"{engine}: returned {out.shape[0] if out.ndim else 0} embeddings for {rows} images "
            f"(shape {list(out.shape)})"
        )
    if out.shape[1] != embed_dim:
        raise ModelError(f"{engine}: returned {out.shape[1]}-d embeddings, bundle says {embed_dim}")
    out = out.astype(np.float32, copy=False)
    if not np.isfinite(out).all():
        raise ModelError(f"{engine}: returned non-finite embeddings (NaN or inf)")
    return out


def empty(embed_dim: int) -> np.ndarray:
    """The embeddings of an empty batch: float32 [0, D]."""
    return np.zeros((0, embed_dim), np.float32)
