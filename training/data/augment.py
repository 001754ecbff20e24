"""Training augmentation on uint8 RGB images with OpenCV, the engines' image path: random resized
crop, horizontal flip, colour jitter (brightness, contrast, saturation). Every random choice
comes from the `rng` passed in, seeded per (run seed, epoch, image), so a batch is the same on
one process or split over many, and after a resume."""

from __future__ import annotations

import math

import cv2
import numpy as np

from training.config import AugmentConfig

_ATTEMPTS = 10
_GRAY = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # RGB luma weights


def augment(
    image: np.ndarray, size: int, rng: np.random.Generator, cfg: AugmentConfig
) -> np.ndarray:
    """uint8 [H, W, 3] RGB → uint8 [size, size, 3] RGB, randomly cropped, flipped, jittered."""
    out = random_resized_crop(image, size, rng, cfg.scale, cfg.ratio)
    if cfg.flip and rng.random() < 0.5:
        out = np.ascontiguousarray(out[:, ::-1])
    if cfg.brightness or cfg.contrast or cfg.saturation:
        out = color_jitter(out, rng, cfg.brightness, cfg.contrast, cfg.saturation)
    return out


def random_resized_crop(
    image: np.ndarray,
    size: int,
    rng: np.random.Generator,
    scale: tuple[float, float],
    ratio: tuple[float, float],
) -> np.ndarray:
    """A crop covering `scale` of the area with aspect ratio in `ratio` (log-uniform), resized to
    size×size; after 10 failed draws, the centre square (as torchvision does)."""
    h, w = image.shape[:2]
    area = h * w
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    for _ in range(_ATTEMPTS):
        target = area * rng.uniform(scale[0], scale[1])
        aspect = math.exp(rng.uniform(log_lo, log_hi))
        cw = round(math.sqrt(target * aspect))
        ch = round(math.sqrt(target / aspect))
        if 0 < cw <= w and 0 < ch <= h:
            x0 = int(rng.integers(0, w - cw + 1))
            y0 = int(rng.integers(0, h - ch + 1))
            break
    else:
        cw = ch = min(h, w)
        x0, y0 = (w - cw) // 2, (h - ch) // 2
    crop = image[y0 : y0 + ch, x0 : x0 + cw]
    shrinking = min(cw, ch) > size
    interp = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return cv2.resize(crop, (size, size), interpolation=interp)


def color_jitter(
    image: np.ndarray,
    rng: np.random.Generator,
    brightness: float,
    contrast: float,
    saturation: float,
) -> np.ndarray:
    """Each factor drawn from [1 - x, 1 + x]: brightness scales the pixels, contrast pulls them
    to/from the mean grey, saturation to/from each pixel's grey."""
    f = image.astype(np.float32)
    if brightness:
        f *= rng.uniform(1 - brightness, 1 + brightness)
    if contrast:
        mean = float((f @ _GRAY).mean())
        f = (f - mean) * rng.uniform(1 - contrast, 1 + contrast) + mean
    if saturation:
        gray = (f @ _GRAY)[..., None]
        f = (f - gray) * rng.uniform(1 - saturation, 1 + saturation) + gray
    return np.clip(f, 0, 255, out=f).astype(np.uint8)
