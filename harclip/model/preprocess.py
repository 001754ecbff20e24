"""Decode, resize and centre-crop images into the uint8 N×S×S×3 RGB batches engines take.

Matches transformers' `CLIPImageProcessor` (shortest side → S bicubic, long side truncated to an
int, centre crop S×S, RGB, transparency composited onto white) at a fraction of its cost: OpenCV
decodes (JPEGs far larger than S are decoded at 1/2, 1/4 or 1/8 scale by libjpeg's DCT scaling),
resizes bicubic, or bilinear / pixel-area averaging when shrinking by 1.25× / 2× or more,
which is closer to PIL's antialiased bicubic than OpenCV's bicubic is there. Mean/std
normalisation happens inside the engine graph.

EXIF orientation is ignored, as `CLIPImageProcessor` ignores it: the model sees the stored pixels,
the same as during training and zero-shot evaluation with Hugging Face tools.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Executor

import cv2
import numpy as np

from harclip import DECODER_MAX_PIXELS
from harclip.errors import DecodeError
from harclip.model.imageio import ImageHeader, check_header

# Beyond this aspect ratio the long side is centre-cropped to a square before resizing, so a
# 1×100000 image cannot blow up into a 224×22,400,000 intermediate.
_MAX_ASPECT = 8.0
_REDUCED_FLAGS = ((8, cv2.IMREAD_REDUCED_COLOR_8), (4, cv2.IMREAD_REDUCED_COLOR_4),
                  (2, cv2.IMREAD_REDUCED_COLOR_2))  # fmt: skip
_IGNORE_EXIF = cv2.IMREAD_IGNORE_ORIENTATION
_POOL_CHUNK = 4  # images per thread-pool task


def decode_image(
    data: bytes,
    size: int,
    *,
    max_pixels: int,
    out: np.ndarray | None = None,
    header: ImageHeader | None = None,
) -> np.ndarray:
    """One encoded image → uint8 [S, S, 3] RGB (S = `size`, pixels), resized and centre-cropped.

    The header is checked first (format, dimensions ≤ `max_pixels`, completeness), so a bomb or
    a truncated file is refused before decoding; `DecodeError` says why. `out`, if given, is a
    C-contiguous uint8 [S, S, 3] array the result is written into. `header`: what
    `check_header(data, max_pixels=max_pixels)` returned for these bytes, to not parse it twice.
    """
    if header is None:
        header = check_header(data, max_pixels=max_pixels)
    bgr = _decode_bgr(data, header, size)
    return _resize_crop(bgr, size, out, bgr=True)


def decode_rgb(data: bytes, *, max_pixels: int, min_side: int | None = None) -> np.ndarray:
    """One encoded image → uint8 [H, W, 3] RGB at its own size, with the checks of
    `decode_image` (training crops and augments it before `resize_crop`-like resizing).

    With `min_side`, a JPEG much larger than that is decoded at 1/2, 1/4 or 1/8 scale, keeping
    its shortest side at least `min_side` pixels.
    """
    return cv2.cvtColor(decode_bgr(data, max_pixels=max_pixels, min_side=min_side),
                        cv2.COLOR_BGR2RGB)  # fmt: skip


def decode_bgr(data: bytes, *, max_pixels: int, min_side: int | None = None) -> np.ndarray:
    """`decode_rgb` in OpenCV's channel order (uint8 [H, W, 3] BGR): for what goes straight
    back to OpenCV (thumbnails), with no colour conversion either way."""
    header = check_header(data, max_pixels=max_pixels)
    return _decode_bgr(data, header, min_side if min_side is not None else 1 << 30)


def resize_crop(
    image: np.ndarray, size: int, *, out: np.ndarray | None = None, bgr: bool = False
) -> np.ndarray:
    """uint8 [H, W, 3] → uint8 [S, S, 3] RGB: shortest side to `size` pixels, centre crop.

    `bgr=True` says `image` is in OpenCV's BGR channel order (the result is RGB either way).
    """
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise DecodeError(f"expected a uint8 H×W×3 image, got {image.dtype} {image.shape}")
    return _resize_crop(image, size, out, bgr=bgr)


def _resize_crop(image: np.ndarray, size: int, out: np.ndarray | None, *, bgr: bool) -> np.ndarray:
    """`resize_crop` of a uint8 [H, W, 3] image, or of a premultiplied [H, W, 4] one (colour ×
    alpha / 255), composited onto white only at the output size: resizing is linear, so this
    equals compositing first, without a full-size pass in 16 bits."""
    image = _limit_aspect(image)
    h, w = image.shape[:2]
    short, long = min(h, w), max(h, w)
    new_long = int(size * long / short)  # truncation, as CLIPImageProcessor
    new_w, new_h = (size, new_long) if w <= h else (new_long, size)
    if (new_h, new_w) != (h, w):
        image = cv2.resize(image, (new_w, new_h), interpolation=_interpolation(short / size))
    top, left = (new_h - size) // 2, (new_w - size) // 2
    crop = image[top : top + size, left : left + size]
    if crop.shape[2] == 4:
        crop = crop[:, :, :3] + (255 - crop[:, :, 3:4])  # c·a/255 + 255·(1 − a/255) ≤ 255
    if out is None:
        out = np.empty((size, size, 3), np.uint8)
    if bgr:
        cv2.cvtColor(crop, cv2.COLOR_BGR2RGB, dst=out)
    else:
        np.copyto(out, crop)
    return out


def preprocess_batch(
    images: Sequence[bytes],
    size: int,
    *,
    max_pixels: int,
    out: np.ndarray | None = None,
    pool: Executor | None = None,
) -> tuple[np.ndarray, list[DecodeError | None]]:
    """Encoded images → (uint8 [N, S, S, 3] RGB, one error or None per input).

    Rows of images that failed are zeros. `out` (uint8 [≥N, S, S, 3], C-contiguous) is reused
    when given and its first N rows returned. With `pool`, images decode in parallel (OpenCV
    releases the GIL while decoding and resizing).
    """
    n = len(images)
    if out is None:
        out = np.empty((n, size, size, 3), np.uint8)
    elif (
        out.dtype != np.uint8
        or out.ndim != 4
        or out.shape[0] < n
        or out.shape[1:] != (size, size, 3)
        or not out.flags.c_contiguous
    ):
        raise ValueError(f"out must be C-contiguous uint8 [>={n}, {size}, {size}, 3], got "
                         f"{out.dtype} {out.shape}")  # fmt: skip
    batch = out[:n]

    def one(i: int) -> DecodeError | None:
        try:
            decode_image(images[i], size, max_pixels=max_pixels, out=batch[i])
        except DecodeError as e:
            batch[i] = 0
            return e
        return None

    if pool is None:
        return batch, [one(i) for i in range(n)]

    def run(start: int) -> list[DecodeError | None]:
        return [one(i) for i in range(start, min(start + _POOL_CHUNK, n))]

    # chunks amortise the executor's per-task overhead (~20 µs) over several images
    return batch, [e for chunk in pool.map(run, range(0, n, _POOL_CHUNK)) for e in chunk]


def _decode_bgr(data: bytes, header: ImageHeader, size: int) -> np.ndarray:
    flags = cv2.IMREAD_COLOR | _IGNORE_EXIF
    if header.has_alpha:
        flags = cv2.IMREAD_UNCHANGED | _IGNORE_EXIF
    elif header.format == "jpeg":
        short = min(header.width, header.height)
        for factor, reduced in _REDUCED_FLAGS:
            if short // factor >= size:
                flags = reduced | _IGNORE_EXIF
                break
    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    except cv2.error as e:
        if "CV_IO_MAX_IMAGE_PIXELS" in str(e):  # the decoder read larger dimensions than the header
            raise DecodeError(
                f"{header.format.upper()} decodes to more than {DECODER_MAX_PIXELS:,} pixels "
                f"although its header says {header.width}x{header.height}: refused"
            ) from None
        raise DecodeError(f"corrupt {header.format.upper()} data ({_first_line(e)})") from None
    if image is None or image.size == 0:
        raise DecodeError(f"corrupt {header.format.upper()} data (the decoder failed)")
    return _to_bgr8(image)


def _to_bgr8(image: np.ndarray) -> np.ndarray:
    """Any decoded layout (gray, BGRA, 16-bit) → uint8 [H, W, 3] BGR, or premultiplied
    [H, W, 4] BGRA for an image with alpha."""
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    elif image.dtype != np.uint8:
        raise DecodeError(f"unsupported pixel type {image.dtype}")
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    channels = image.shape[2]
    if channels == 3:
        return image
    if channels == 1:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if channels == 4:  # premultiplied here, composited onto white after resizing
        return cv2.cvtColor(image, cv2.COLOR_RGBA2mRGBA)
    raise DecodeError(f"unsupported channel count {channels}")


def _interpolation(shrink: float) -> int:
    # Measured against PIL's bicubic (antialiased when shrinking) on real photos and video frames:
    # OpenCV's bicubic is closest up to a 1.25× shrink, bilinear up to 2×, area averaging beyond.
    if shrink < 1.25:
        return cv2.INTER_CUBIC
    if shrink < 2.0:
        return cv2.INTER_LINEAR
    return cv2.INTER_AREA


def _limit_aspect(image: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    if max(h, w) <= _MAX_ASPECT * min(h, w):
        return image
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    return image[top : top + side, left : left + side]


def _first_line(e: BaseException) -> str:
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    return lines[-1] if lines else type(e).__name__
