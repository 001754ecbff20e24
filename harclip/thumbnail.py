"""Small JPEG thumbnails of frames (search hits, event lists): the longest side `THUMB_SIDE`
pixels, aspect kept, a few KB. A large JPEG is decoded at 1/2, 1/4 or 1/8 scale straight away
(libjpeg's DCT scaling), so a thumbnail costs a fraction of a full decode."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from harclip.errors import DecodeError
from harclip.model.preprocess import decode_bgr

THUMB_SIDE = 160  # pixels, the longest side
THUMB_QUALITY = 80  # JPEG quality


def thumbnail_jpeg(
    data: bytes, *, max_pixels: int, side: int = THUMB_SIDE, quality: int = THUMB_QUALITY
) -> bytes:
    """The encoded image `data` as a JPEG whose longest side is at most `side` pixels
    (`DecodeError` for an image that cannot be decoded, with the checks of `decode_image`)."""
    bgr = decode_bgr(data, max_pixels=max_pixels, min_side=side)  # [H, W, 3], H, W >= side-ish
    return _encode_bgr(bgr, side, quality)


def thumbnails_jpeg(
    datas: Sequence[bytes], *, max_pixels: int, side: int = THUMB_SIDE,
    quality: int = THUMB_QUALITY,
) -> list[bytes | DecodeError]:  # fmt: skip
    """`thumbnail_jpeg` of each of `datas`, in order; an image that cannot be decoded gives
    its `DecodeError` in its place (the others are made all the same). One call for a batch:
    one thread hand-off for all of them."""
    out: list[bytes | DecodeError] = []
    for data in datas:
        try:
            out.append(thumbnail_jpeg(data, max_pixels=max_pixels, side=side, quality=quality))
        except DecodeError as e:
            out.append(e)
    return out


def encode_thumbnail(rgb: np.ndarray, *, side: int = THUMB_SIDE, quality: int = THUMB_QUALITY
                     ) -> bytes:  # fmt: skip
    """uint8 [H, W, 3] RGB → JPEG with the longest side at most `side` pixels."""
    return _encode_bgr(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), side, quality)


def _encode_bgr(bgr: np.ndarray, side: int, quality: int) -> bytes:
    h, w = bgr.shape[:2]
    scale = side / max(h, w)
    if scale < 1:
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        bgr = cv2.resize(bgr, size, interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("OpenCV could not encode the thumbnail")
    return bytes(buf)
