"""Frame thumbnails: the longest side 160 px, aspect kept, a few KB; small images kept as they
are; undecodable bytes are a DecodeError."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from harclip.errors import DecodeError
from harclip.thumbnail import THUMB_SIDE, encode_thumbnail, thumbnail_jpeg, thumbnails_jpeg


def _decode(jpeg: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    return image


def test_a_photo_becomes_160_px_and_a_few_kb(sample_photos: list[Path]) -> None:
    for path in sample_photos[::150]:
        data = path.read_bytes()
        h, w = _decode(data).shape[:2]
        jpeg = thumbnail_jpeg(data, max_pixels=50_000_000)
        th, tw = _decode(jpeg).shape[:2]
        assert max(th, tw) == THUMB_SIDE
        assert abs(tw / th - w / h) < 0.05  # aspect kept
        assert len(jpeg) < 16_000


def test_a_small_image_keeps_its_size() -> None:
    rgb = np.full((90, 120, 3), 128, np.uint8)
    assert _decode(encode_thumbnail(rgb)).shape[:2] == (90, 120)


def test_undecodable_bytes() -> None:
    with pytest.raises(DecodeError):
        thumbnail_jpeg(b"\xff\xd8\xff\xe0 not a jpeg", max_pixels=50_000_000)


def test_colours_stay_in_their_channels() -> None:
    bgr = np.zeros((240, 320, 3), np.uint8)
    bgr[..., 2] = 255  # red, in OpenCV's order
    ok, buf = cv2.imencode(".jpg", bgr)
    assert ok
    b, g, r = _decode(thumbnail_jpeg(bytes(buf), max_pixels=50_000_000)).mean(axis=(0, 1))
    assert r > 200 and b < 40 and g < 40
    rgb = np.zeros((90, 120, 3), np.uint8)
    rgb[..., 0] = 255  # red, in RGB order
    b, g, r = _decode(encode_thumbnail(rgb)).mean(axis=(0, 1))
    assert r > 200 and b < 40 and g < 40


def test_a_batch_with_one_bad_image_makes_the_others(sample_photos: list[Path]) -> None:
    good = sample_photos[0].read_bytes()
    out = thumbnails_jpeg([good, b"\xff\xd8 broken", good], max_pixels=50_000_000)
    assert isinstance(out[1], DecodeError)
    assert out[0] == out[2] and isinstance(out[0], bytes)
    assert max(_decode(out[0]).shape[:2]) == THUMB_SIDE
