"""Turning pixels into the JPEG bytes a Frame carries: down-scaling to the model's input size
first (so Kafka and the workers' decoders carry no pixels the model never sees), and a generated
test pattern for sources without a camera or video."""

from __future__ import annotations

import cv2
import numpy as np

from harclip.errors import DecodeError

DEFAULT_SHORT_SIDE = 224  # pixels: CLIP's input; the worker centre-crops the short side
JPEG_QUALITY = 90


def downscale(bgr: np.ndarray, short_side: int) -> np.ndarray:
    """Shrink so the shortest side is `short_side` pixels (never enlarges; 0: unchanged)."""
    h, w = bgr.shape[:2]
    short = min(h, w)
    if short_side <= 0 or short <= short_side:
        return bgr
    scale = short_side / short
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(bgr, size, interpolation=cv2.INTER_AREA)


def encode_jpeg(bgr: np.ndarray, short_side: int = DEFAULT_SHORT_SIDE,
                quality: int = JPEG_QUALITY) -> bytes:  # fmt: skip
    """uint8 [H, W, 3] BGR -> JPEG bytes, down-scaled to `short_side` first."""
    ok, buf = cv2.imencode(".jpg", downscale(bgr, short_side),
                           [cv2.IMWRITE_JPEG_QUALITY, quality])  # fmt: skip
    if not ok:
        raise DecodeError("OpenCV could not encode the frame as JPEG")
    return buf.tobytes()


def test_pattern(index: int, width: int = 320, height: int = 240, label: str = "") -> np.ndarray:
    """A moving colour-bar pattern with a frame counter: uint8 [height, width, 3] BGR."""
    x = np.linspace(0, 255, width, dtype=np.float32)
    img = np.empty((height, width, 3), np.uint8)
    img[..., 0] = (x + index * 4) % 256
    img[..., 1] = np.linspace(0, 255, height, dtype=np.float32)[:, None]
    img[..., 2] = (255 - x + index * 2) % 256
    box = (index * 5) % max(1, width - 40)
    cv2.rectangle(img, (box, height // 3), (box + 40, height // 3 + 40), (255, 255, 255), -1)
    cv2.putText(img, f"{label} #{index}", (8, height - 12), cv2.FONT_HERSHEY_SIMPLEX, 0.6,
                (0, 0, 0), 2)  # fmt: skip
    return img
