"""Small JPEG thumbnails of frames (search hits, event lists): the longest side `THUMB_SIDE`
pixels, aspect kept, a few KB. A large JPEG is decoded at 1/2, 1/4 or 1/8 scale straight away
(libjpeg's DCT scaling), so a thumbnail costs a fraction of a full decode."""

from __future__ import annotations

import cv2
import numpy as np

from harclip.model.preprocess import decode_rgb

THUMB_SIDE = 160  # pixels, the longest side
THUMB_QUALITY = 80  # JPEG quality


def thumbnail_jpeg(
    data: bytes, *, max_pixels: int, side: int = THUMB_SIDE, quality: int = THUMB_QUALITY
) -> bytes:
    """The encoded image `data` as a JPEG whose longest side is at most `side` pixels
    (`DecodeError` for an image that cannot be decoded, with the checks of `decode_image`)."""
    rgb = decode_rgb(data, max_pixels=max_pixels, min_side=side)  # [H, W, 3], H, W >= side-ish
    return encode_thumbnail(rgb, side=side, quality=quality)


def encode_thumbnail(rgb: np.ndarray, *, side: int = THUMB_SIDE, quality: int = THUMB_QUALITY
                     ) -> bytes:  # fmt: skip
    """uint8 [H, W, 3] RGB → JPEG with the longest side at most `side` pixels."""
    h, w = rgb.shape[:2]
    scale = side / max(h, w)
    if scale < 1:
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
                           [cv2.IMWRITE_JPEG_QUALITY, quality])  # fmt: skip
    if not ok:
        raise ValueError("OpenCV could not encode the thumbnail")
    return bytes(buf)
