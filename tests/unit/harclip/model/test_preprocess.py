"""Preprocessing: parity with CLIPImageProcessor on the real photos, bad input, odd layouts."""

from __future__ import annotations

import io
import re
import struct
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pytest

from harclip.errors import DecodeError
from harclip.model.imageio import iter_image_paths, read_header
from harclip.model.preprocess import decode_image, preprocess_batch, resize_crop

S = 224
MAX_PIXELS = 40_000_000


def _hf_pixels(data: bytes) -> np.ndarray:
    """CLIPImageProcessor's resized and cropped uint8 pixels, [S, S, 3] RGB."""
    import transformers
    from PIL import Image

    transformers.logging.set_verbosity_error()
    proc = transformers.CLIPImageProcessor(do_rescale=False, do_normalize=False)
    out = proc(images=Image.open(io.BytesIO(data)), return_tensors="np")["pixel_values"][0]
    return np.asarray(out).transpose(1, 2, 0).astype(np.float32)


def _jpeg(h: int, w: int, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    img = cv2.GaussianBlur(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), (5, 5), 0)
    ok, buf = cv2.imencode(".jpg", img)
    assert ok
    return buf.tobytes()


def test_parity_with_clip_image_processor_on_all_sample_photos(sample_photos: list[Path]) -> None:
    # Measured on the 600 photos: mean |Δ| 0.66, worst image mean 1.77, worst pixel 28 (0-255).
    assert len(sample_photos) == 600
    datas = [p.read_bytes() for p in sample_photos]
    ours, errors = preprocess_batch(datas, S, max_pixels=MAX_PIXELS)
    assert errors == [None] * 600
    means, maxes = [], []
    for data, row in zip(datas, ours, strict=True):
        diff = np.abs(_hf_pixels(data) - row)
        means.append(float(diff.mean()))
        maxes.append(float(diff.max()))
    assert float(np.mean(means)) < 0.8
    assert max(means) < 2.5
    assert max(maxes) <= 40


def test_reduced_decoding_of_large_jpeg_stays_close_to_hf() -> None:
    data = _jpeg(1800, 2400)
    ours = decode_image(data, S, max_pixels=MAX_PIXELS)
    assert ours.shape == (S, S, 3) and ours.dtype == np.uint8
    assert float(np.abs(_hf_pixels(data) - ours).mean()) < 3.0


def test_geometry_follows_hf_truncation_and_crop() -> None:
    # A 2-colour image split at the centre column: the crop keeps the split in the middle.
    img = np.zeros((100, 301, 3), np.uint8)
    img[:, 151:] = 255
    out = resize_crop(img, S)
    assert out.shape == (S, S, 3)
    assert out[:, :100].max() == 0 and out[:, 124:].min() == 255


def test_batch_reuses_out_and_threads_give_same_result(sample_photos: list[Path]) -> None:
    datas = [p.read_bytes() for p in sample_photos[:9]]
    buf = np.full((16, S, S, 3), 7, np.uint8)
    batch, errors = preprocess_batch(datas, S, max_pixels=MAX_PIXELS, out=buf)
    assert batch.shape == (9, S, S, 3) and np.shares_memory(batch, buf)
    with ThreadPoolExecutor(2) as pool:
        threaded, _ = preprocess_batch(datas, S, max_pixels=MAX_PIXELS, pool=pool)
    np.testing.assert_array_equal(batch, threaded)
    assert errors == [None] * 9


def test_batch_rejects_wrong_out_buffer() -> None:
    with pytest.raises(ValueError, match="C-contiguous uint8"):
        preprocess_batch([b""], S, max_pixels=MAX_PIXELS, out=np.zeros((1, S, S, 3), np.float32))


def _bad_huffman_jpeg() -> bytes:
    data = bytearray(_jpeg(120, 160))
    at = data.find(b"\xff\xc4")  # first Huffman table: counts that overflow
    data[at + 5 : at + 21] = b"\xff" * 16
    return bytes(data)


def _bomb_png(w: int, h: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + ihdr + b"\0\0\0\0"


def _bomb_jpeg(w: int, h: int) -> bytes:
    sof = b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, h, w, 1) + b"\x01\x11\x00"
    return b"\xff\xd8" + sof + b"\xff\xda\x00\x08\x01\x01\x00\x00\x3f\x00" + b"\0" * 100


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty input"),
        (b"hello, this is a text file\nnot a picture\n", "not an image (looks like text)"),
        (np.random.default_rng(1).bytes(4096), "not an image"),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", "truncated JPEG header"),
        (_jpeg(120, 160)[:-400], "truncated JPEG data"),
        (_bad_huffman_jpeg(), "corrupt JPEG data (the decoder failed)"),
        (_bomb_jpeg(60000, 60000), "image too large: 60000x60000"),
        (_bomb_png(100000, 100000), "image too large: 100000x100000"),
        (_bomb_png(0, 10), "invalid PNG dimensions 0x10"),
        (b"II*\x00" + b"\x00" * 100, "unsupported image format (TIFF)"),
    ],
    ids=[
        "empty",
        "text",
        "random",
        "jpeg-hdr",
        "truncated",
        "corrupt",
        "bomb-jpeg",
        "bomb-png",
        "zero-dim",
        "tiff",
    ],
)
def test_bad_input_raises_decode_error_with_reason(data: bytes, reason: str) -> None:
    with pytest.raises(DecodeError, match=re.escape(reason)):
        decode_image(data, S, max_pixels=MAX_PIXELS)


def test_bad_rows_are_zero_and_good_rows_decoded(sample_photos: list[Path]) -> None:
    good = sample_photos[0].read_bytes()
    batch, errors = preprocess_batch([good, b"", good[:500]], S, max_pixels=MAX_PIXELS)
    assert errors[0] is None
    assert isinstance(errors[1], DecodeError) and isinstance(errors[2], DecodeError)
    assert batch[1].max() == 0 and batch[2].max() == 0 and batch[0].max() > 0


def test_bomb_is_refused_from_the_header_alone() -> None:
    # a real (small) image re-labelled with a huge SOF: never decoded, refused by the limit
    data = bytearray(_jpeg(64, 64))
    at = data.find(b"\xff\xc0")
    data[at + 5 : at + 9] = struct.pack(">HH", 50000, 50000)
    with pytest.raises(DecodeError, match="exceeds the limit of 1,000,000"):
        decode_image(bytes(data), S, max_pixels=1_000_000)


def _png(img: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", img)
    assert ok
    return buf.tobytes()


def test_grayscale_16bit_and_alpha_png() -> None:
    gray = np.full((50, 80), 100, np.uint8)
    assert decode_image(_png(gray), S, max_pixels=MAX_PIXELS).reshape(-1, 3).tolist()[0] == [
        100, 100, 100,
    ]  # fmt: skip
    deep = np.full((50, 80, 3), 40000, np.uint16)
    out16 = decode_image(_png(deep), S, max_pixels=MAX_PIXELS)
    assert int(out16.min()) == int(out16.max()) == 40000 >> 8
    bgra = np.zeros((50, 80, 4), np.uint8)
    bgra[..., 2] = 200  # red, fully transparent on the left half, opaque on the right
    bgra[:, 40:, 3] = 255
    out = decode_image(_png(bgra), S, max_pixels=MAX_PIXELS)
    assert out[S // 2, 5].tolist() == [255, 255, 255]  # transparent → white, as HF
    assert out[S // 2, S - 5].tolist() == [200, 0, 0]  # RGB order


@pytest.mark.parametrize("ext", [".webp", ".bmp", ".gif"])
def test_other_formats_decode_and_header_reads_size(ext: str) -> None:
    img = np.zeros((70, 90, 3), np.uint8)
    img[..., 0] = 255  # blue in BGR
    ok, buf = cv2.imencode(ext, img)
    assert ok
    header = read_header(buf.tobytes())
    assert (header.width, header.height) == (90, 70)
    out = decode_image(buf.tobytes(), S, max_pixels=MAX_PIXELS)
    assert out[S // 2, S // 2, 2] > 200 and out[S // 2, S // 2, 0] < 50


def test_exif_orientation_is_ignored_like_hf() -> None:
    from PIL import Image

    img = Image.new("RGB", (120, 60), (255, 0, 0))
    img.paste((0, 0, 255), (60, 0, 120, 60))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° on display
    buf = io.BytesIO()
    img.save(buf, "JPEG", exif=exif, quality=95)
    out = decode_image(buf.getvalue(), S, max_pixels=MAX_PIXELS)
    assert out[S // 2, 10, 0] > 200 and out[S // 2, S - 10, 2] > 200  # left red, right blue


def test_extreme_aspect_ratio_is_bounded() -> None:
    img = np.full((2, 5000, 3), 9, np.uint8)
    out = resize_crop(img, S)
    assert out.shape == (S, S, 3) and int(out.max()) == 9


def test_iter_image_paths(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    for name in ("a/x.jpg", "a/b/y.PNG", "a/notes.txt", "z.webp"):
        (tmp_path / name).write_bytes(b"")
    named = [tmp_path / "a", tmp_path / "a" / "notes.txt", tmp_path / "missing.jpg"]
    assert list(iter_image_paths(named)) == [
        tmp_path / "a/b/y.PNG", tmp_path / "a/x.jpg", tmp_path / "a/notes.txt", named[2],
    ]  # fmt: skip
