"""Crafted files of each format: every way to make one frame cost gigabytes or seconds is refused
before decoding, and what is allowed is decoded the same way as before (alpha composited after
resizing). The figures these limits give are in docs/model.md (bench/decode_bounds.py)."""

from __future__ import annotations

import struct
import subprocess
import sys
import zlib

import cv2
import numpy as np
import pytest

from harclip import DECODER_MAX_PIXELS
from harclip.errors import DecodeError
from harclip.model.imageio import MAX_JPEG_SCANS, check_header
from harclip.model.preprocess import decode_image

S = 224
LIMIT = 40_000_000


def _small_jpeg(progressive: bool = False) -> bytes:
    img = np.full((16, 16, 3), 128, np.uint8)
    params = [cv2.IMWRITE_JPEG_PROGRESSIVE, 1] if progressive else []
    return cv2.imencode(".jpg", img, params)[1].tobytes()


def _segments(data: bytes) -> tuple[list[tuple[int, bytes]], bytes]:
    """The header segments of a JPEG (marker, bytes) up to and including the first SOS, and the
    rest (scan data and EOI)."""
    out, i = [], 2
    while True:
        marker, length = data[i + 1], struct.unpack(">H", data[i + 2 : i + 4])[0]
        out.append((marker, data[i : i + 2 + length]))
        i += 2 + length
        if marker == 0xDA:
            return out, data[i:]


def _with_size(sof: bytes, w: int, h: int) -> bytes:
    out = bytearray(sof)
    out[5:9] = struct.pack(">HH", h, w)
    return bytes(out)


def ff00_jpeg() -> bytes:
    """656 bytes that libjpeg decodes as 20000×20000 (2.3 GB, 22 s here) while a naive header
    walk, reading `FF 00` as a marker with a length, sees the 16×16 frame hidden in a comment."""
    segs, rest = _segments(_small_jpeg())
    sof = next(s for m, s in segs if m == 0xC0)
    others = b"".join(s for m, s in segs if m != 0xC0)
    big = _with_size(sof, 20000, 20000)
    comment = b"\xff\xfe" + struct.pack(">H", 2 + len(sof))  # libjpeg: a COM holding `sof`
    skip = struct.pack(">H", 2 + len(big) + len(comment))  # naive walk: a segment over both
    return b"\xff\xd8\xff\x00" + skip + big + comment + sof + others + rest


def test_a_stuffed_zero_between_segments_is_refused() -> None:
    with pytest.raises(DecodeError, match="marker 0x00"):
        check_header(ff00_jpeg(), max_pixels=LIMIT)


def test_the_decoder_enforces_the_ceiling_itself() -> None:
    """Importing harclip sets OpenCV's own limit before cv2 loads: a file the header check would
    pass still cannot make the decoder allocate more than DECODER_MAX_PIXELS."""
    script = (
        "import harclip, cv2, numpy, sys\n"
        "data = numpy.frombuffer(sys.stdin.buffer.read(), numpy.uint8)\n"
        "try:\n"
        "    img = cv2.imdecode(data, cv2.IMREAD_COLOR)\n"
        "    print('decoded', None if img is None else img.shape)\n"
        "except cv2.error as e:\n"
        "    print('refused', 'CV_IO_MAX_IMAGE_PIXELS' in str(e))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], input=ff00_jpeg(), capture_output=True, timeout=60
    )
    assert proc.stdout.decode().strip() == "refused True", proc.stderr.decode()[-500:]
    assert DECODER_MAX_PIXELS == 1 << 26


def test_garbage_and_endless_fill_and_segments_are_refused() -> None:
    data = _small_jpeg()
    segs, rest = _segments(data)
    header = b"".join(s for _, s in segs)
    first = segs[0][1]  # APP0
    with pytest.raises(DecodeError, match="no marker"):  # libjpeg would skip it: refused here
        check_header(data[:2] + first + b"\x12\x34" + data[2 + len(first) :], max_pixels=LIMIT)
    with pytest.raises(DecodeError, match="marker 0xD8"):
        check_header(data[:2] + data, max_pixels=LIMIT)
    fill = b"\xff\xd8" + b"\xff" * 10_000_000  # 10 MB of fill bytes: a regex, not a Python loop
    with pytest.raises(DecodeError):
        check_header(fill, max_pixels=LIMIT)
    comments = b"\xff\xfe\x00\x02" * 300
    with pytest.raises(DecodeError, match="over 256 segments"):
        check_header(b"\xff\xd8" + comments + header + rest, max_pixels=LIMIT)


def test_a_jpeg_with_thousands_of_scans_is_refused() -> None:
    data = _small_jpeg(progressive=True)
    first_sos = data.index(b"\xff\xda")
    scan = data[first_sos : data.index(b"\xff\xd9")]  # every scan of the file, repeated below
    many = data[:first_sos] + scan * (MAX_JPEG_SCANS + 5) + b"\xff\xd9"
    assert data.count(b"\xff\xda") <= MAX_JPEG_SCANS  # a real progressive file passes
    check_header(data, max_pixels=LIMIT)
    with pytest.raises(DecodeError, match=rf"scans \(at most {MAX_JPEG_SCANS}\)"):
        check_header(many, max_pixels=LIMIT)


def _png(w: int, h: int, color_type: int, idat: bytes) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", w, h, 8, color_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def _gif(w: int, h: int) -> bytes:
    return b"GIF89a" + struct.pack("<HH", w, h) + b"\x00\x00\x00" + b"\x00" * 40 + b";"


def _bmp(w: int, h: int) -> bytes:
    dib = struct.pack("<IiiHHIIiiII", 40, w, h, 1, 24, 1, 0, 0, 0, 0, 0)  # RLE8 claim
    return b"BM" + struct.pack("<IHHI", 14 + 40 + 64, 0, 0, 54) + dib + b"\x00" * 64


def _webp(w: int, h: int) -> bytes:
    bits = (w - 1) | ((h - 1) << 14) | (1 << 28)
    body = b"VP8L" + struct.pack("<I", 5 + 100) + b"\x2f" + struct.pack("<I", bits) + b"\x00" * 100
    return b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WEBP" + body


@pytest.mark.parametrize(
    "name, data",
    [
        ("png", _png(6000, 6000, 6, zlib.compress(b"\x00" * 100_000))),
        ("gif", _gif(6000, 6000)),
        ("bmp", _bmp(6000, 6000)),
        ("webp", _webp(6000, 6000)),
        ("jpeg", b""),
    ],
)
def test_a_small_file_claiming_millions_of_pixels_is_refused(name: str, data: bytes) -> None:
    if name == "jpeg":  # patch the frame header of a real JPEG
        segs, rest = _segments(_small_jpeg())
        patched = b"".join(_with_size(s, 6000, 6000) if m == 0xC0 else s for m, s in segs)
        data = b"\xff\xd8" + patched + rest
    with pytest.raises(DecodeError, match="pixels per byte"):
        check_header(data, max_pixels=LIMIT)


def test_small_flat_images_still_pass_the_ratio() -> None:
    flat = cv2.imencode(".png", np.zeros((480, 640, 3), np.uint8))[1].tobytes()
    assert 640 * 480 / len(flat) > 100  # flat: many pixels per byte, but a small image
    assert decode_image(flat, S, max_pixels=LIMIT).shape == (S, S, 3)


def test_alpha_is_composited_after_resizing_as_if_before() -> None:
    rng = np.random.default_rng(0)
    bgra = rng.integers(0, 256, (600, 900, 4), dtype=np.uint8)
    bgra[:, :, 3] = cv2.GaussianBlur(bgra[:, :, 3], (31, 31), 0)
    for depth in (8, 16):
        image = bgra.astype(np.uint16) * 257 if depth == 16 else bgra
        data = cv2.imencode(".png", image)[1].tobytes()
        got = decode_image(data, S, max_pixels=LIMIT).astype(np.int16)
        # the reference: composite onto white at full size, then the same resize and crop
        a = bgra[:, :, 3:4].astype(np.float64) / 255
        flat = np.round(bgra[:, :, :3] * a + 255 * (1 - a)).astype(np.uint8)
        want = decode_image(cv2.imencode(".png", flat)[1].tobytes(), S, max_pixels=LIMIT)
        assert np.abs(got - want.astype(np.int16)).max() <= 3
