"""Cheap checks on encoded images before they are decoded: format sniffing from magic bytes,
dimensions from the header (JPEG SOF, PNG IHDR, WebP, BMP, GIF), truncation, and the listing of
image files under paths given on a command line.

Nothing here decodes pixels, so a decompression bomb is refused after reading a few bytes. Every
check runs in linear time in C (bytes.find/count, one regex), never a Python loop per byte, and
the JPEG walk refuses what libjpeg would read differently (a stuffed `FF 00` outside the image
data, garbage between segments), so the size it reports is the size libjpeg decodes. OpenCV's own
pixel ceiling (`harclip.DECODER_MAX_PIXELS`) is the backstop behind it.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from harclip.errors import DecodeError

ImageFormat = Literal["jpeg", "png", "webp", "bmp", "gif"]

IMAGE_SUFFIXES: frozenset[str] = frozenset(
    {".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".webp", ".bmp", ".dib", ".gif"}
)

# JPEG start-of-frame markers (baseline, progressive, lossless, arithmetic); not DHT/JPG/DAC.
_SOF_MARKERS = frozenset(
    {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
)
_STANDALONE_MARKERS = frozenset({0x01, *range(0xD0, 0xD8)})  # TEM, RST0-7: no length field
_FILL = re.compile(rb"\xff+")
_MAX_JPEG_SEGMENTS = 256  # before the image data; real files have fewer than 30
# Each scan of a progressive JPEG is one more pass over the whole image (a few ms per scan at
# 40 MP); real encoders write at most ~12. More is a way to make a small file cost seconds.
MAX_JPEG_SCANS = 40
# A file that claims more pixels than this per byte is refused once it claims more than
# _RATIO_FROM pixels: a photo is about 0.1-1 pixel per byte, flat graphics under 100; a bomb
# claims thousands (a 155 KB PNG claiming 40 MP is 258).
MAX_PIXELS_PER_BYTE = 100
_RATIO_FROM = 4_000_000


@dataclass(frozen=True, slots=True)
class ImageHeader:
    """What the header of an encoded image says, before any pixel is decoded."""

    format: ImageFormat
    width: int  # pixels
    height: int  # pixels
    has_alpha: bool  # transparency possible (decode with the alpha channel, composite on white)

    @property
    def pixels(self) -> int:
        return self.width * self.height


def sniff_format(data: bytes) -> ImageFormat | None:
    """The image format named by the magic bytes at the start of `data`, or None."""
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data.startswith(b"BM"):
        return "bmp"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "gif"
    return None


def _describe_unknown(data: bytes) -> str:
    if data.startswith((b"II*\x00", b"MM\x00*")):
        return "unsupported image format (TIFF); use JPEG, PNG, WebP, BMP or GIF"
    if len(data) >= 12 and data[4:8] == b"ftyp":
        return "unsupported format (ISO media: HEIC/AVIF/MP4); use JPEG, PNG, WebP, BMP or GIF"
    head = data[:64]
    if head and all(32 <= b < 127 or b in (9, 10, 13) for b in head):
        return "not an image (looks like text)"
    return "not an image (unknown magic bytes)"


def read_header(data: bytes) -> ImageHeader:
    """Format, dimensions and alpha of an encoded image from its header; `DecodeError` with the
    reason when the bytes are empty, not an image, of an unsupported format, or cut short."""
    if not data:
        raise DecodeError("empty input (0 bytes)")
    fmt = sniff_format(data)
    if fmt is None:
        raise DecodeError(_describe_unknown(data))
    try:
        header = _PARSERS[fmt](data)
    except (struct.error, IndexError):
        raise DecodeError(f"truncated {fmt.upper()} header ({len(data)} bytes)") from None
    if header.width <= 0 or header.height <= 0:
        raise DecodeError(
            f"invalid {fmt.upper()} dimensions {header.width}x{header.height} in the header"
        )
    return header


def check_header(data: bytes, *, max_pixels: int) -> ImageHeader:
    """`read_header` plus the decompression-bomb limit (`max_pixels`, width × height) and a check
    that the encoded data is complete; `DecodeError` naming the reason."""
    header = read_header(data)
    if header.pixels > max_pixels:
        raise DecodeError(
            f"image too large: {header.width}x{header.height} = {header.pixels:,} pixels "
            f"exceeds the limit of {max_pixels:,} (HARCLIP_MODEL__MAX_PIXELS)"
        )
    if header.pixels > _RATIO_FROM and header.pixels > MAX_PIXELS_PER_BYTE * len(data):
        raise DecodeError(
            f"image claims {header.width}x{header.height} pixels in {len(data):,} bytes (over "
            f"{MAX_PIXELS_PER_BYTE} pixels per byte): refused as a decompression bomb"
        )
    if not _complete(header.format, data):
        raise DecodeError(f"truncated {header.format.upper()} data ({len(data)} bytes)")
    if header.format == "jpeg":
        scans = data.count(b"\xff\xda")  # SOS markers: FF DA cannot occur inside scan data
        if scans > MAX_JPEG_SCANS:
            raise DecodeError(
                f"JPEG with {scans} scans (at most {MAX_JPEG_SCANS}): refused, each scan costs "
                "a pass over the whole image"
            )
    return header


def _complete(fmt: ImageFormat, data: bytes) -> bool:
    if fmt == "jpeg":
        # 0xFFD9 cannot occur inside entropy-coded data (0xFF is stuffed as 0xFF00), so an EOI
        # after the first start-of-scan marks a complete image; bytes after it are ignored.
        sos = _jpeg_first_sos(data)
        return sos >= 0 and data.find(b"\xff\xd9", sos) >= 0
    if fmt == "png":
        return data.rfind(b"IEND") > 8
    if fmt == "gif":
        return data.rstrip(b"\x00").endswith(b"\x3b")
    if fmt == "webp":
        return len(data) >= 8 + int(struct.unpack_from("<I", data, 4)[0])
    return True  # BMP: OpenCV checks the pixel data size itself


def _u16be(data: bytes, at: int) -> int:
    value: int = struct.unpack_from(">H", data, at)[0]
    return value


def _jpeg_segments(data: bytes) -> Iterator[tuple[int, int, int]]:
    """(marker, offset of the marker, segment length) until start-of-scan or end-of-image.

    Stricter than libjpeg where they could disagree: libjpeg skips bytes that are not a marker
    and stuffed `FF 00` pairs between segments (so it may find a frame header this walk would
    step over); here those are refused, as are a second SOI and more than 256 segments.
    """
    i = 2
    n = len(data)
    for _ in range(_MAX_JPEG_SEGMENTS):
        if i >= n:
            break
        if data[i] != 0xFF:
            raise DecodeError(f"corrupt JPEG header (no marker at byte {i})")
        fill = _FILL.match(data, i)
        assert fill is not None
        i = fill.end()  # past the fill bytes
        marker = data[i]
        if marker in (0x00, 0xD8):
            raise DecodeError(f"corrupt JPEG header (marker 0x{marker:02X} at byte {i})")
        if marker in _STANDALONE_MARKERS:
            i += 1
            continue
        length = _u16be(data, i + 1)
        if length < 2:
            raise DecodeError(f"corrupt JPEG header (segment length {length} at byte {i})")
        yield marker, i - 1, length
        if marker in (0xDA, 0xD9):
            return
        i += 1 + length
    else:
        raise DecodeError(f"corrupt JPEG header (over {_MAX_JPEG_SEGMENTS} segments)")
    raise IndexError("JPEG header ends before start of scan")


def _jpeg_first_sos(data: bytes) -> int:
    """Offset of the first start-of-scan marker; -1 when the data ends before it."""
    try:
        for marker, at, _ in _jpeg_segments(data):
            if marker == 0xDA:
                return at
    except (IndexError, struct.error):
        return -1
    raise DecodeError("corrupt JPEG header (end of image before the image data)")


def _parse_jpeg(data: bytes) -> ImageHeader:
    for marker, at, _ in _jpeg_segments(data):
        if marker in _SOF_MARKERS:
            height = _u16be(data, at + 5)
            width = _u16be(data, at + 7)
            if height == 0:
                raise DecodeError("unsupported JPEG (height defined after the first scan, DNL)")
            return ImageHeader("jpeg", width, height, has_alpha=False)
        if marker in (0xDA, 0xD9):
            break
    raise DecodeError("corrupt JPEG header (no start-of-frame marker before the image data)")


def _parse_png(data: bytes) -> ImageHeader:
    if data[12:16] != b"IHDR":
        raise DecodeError("corrupt PNG header (first chunk is not IHDR)")
    width, height = struct.unpack_from(">II", data, 16)
    color_type = data[25]
    has_alpha = color_type in (4, 6) or _png_has_trns(data)
    return ImageHeader("png", width, height, has_alpha)


def _png_has_trns(data: bytes) -> bool:
    i = 8
    while i + 8 <= len(data):
        length, kind = struct.unpack_from(">I4s", data, i)
        if kind == b"tRNS":
            return True
        if kind in (b"IDAT", b"IEND"):
            return False
        i += 12 + length
    return False


def _parse_webp(data: bytes) -> ImageHeader:
    chunk = data[12:16]
    if chunk == b"VP8 ":
        if data[23:26] != b"\x9d\x01\x2a":
            raise DecodeError("corrupt WebP header (bad VP8 frame signature)")
        width = struct.unpack_from("<H", data, 26)[0] & 0x3FFF
        height = struct.unpack_from("<H", data, 28)[0] & 0x3FFF
        return ImageHeader("webp", width, height, has_alpha=False)
    if chunk == b"VP8L":
        if data[20] != 0x2F:
            raise DecodeError("corrupt WebP header (bad VP8L signature)")
        bits = struct.unpack_from("<I", data, 21)[0]
        width = (bits & 0x3FFF) + 1
        height = ((bits >> 14) & 0x3FFF) + 1
        return ImageHeader("webp", width, height, has_alpha=bool((bits >> 28) & 1))
    if chunk == b"VP8X":
        flags = data[20]
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
        if len(data) < 30:
            raise IndexError("VP8X header cut short")
        return ImageHeader("webp", width, height, has_alpha=bool(flags & 0x10))
    raise DecodeError(f"corrupt WebP header (unknown chunk {chunk!r})")


def _parse_bmp(data: bytes) -> ImageHeader:
    dib_size = struct.unpack_from("<I", data, 14)[0]
    if dib_size == 12:  # OS/2 BITMAPCOREHEADER
        width, height = struct.unpack_from("<HH", data, 18)
    elif dib_size >= 40:
        width, height = struct.unpack_from("<ii", data, 18)
    else:
        raise DecodeError(f"corrupt BMP header (DIB header size {dib_size})")
    return ImageHeader("bmp", width, abs(height), has_alpha=False)


def _parse_gif(data: bytes) -> ImageHeader:
    width, height = struct.unpack_from("<HH", data, 6)
    return ImageHeader("gif", width, height, has_alpha=True)


_PARSERS = {
    "jpeg": _parse_jpeg,
    "png": _parse_png,
    "webp": _parse_webp,
    "bmp": _parse_bmp,
    "gif": _parse_gif,
}


def iter_image_paths(paths: Iterable[Path]) -> Iterator[Path]:
    """Files named directly, and image files (by suffix) under folders, recursively and sorted.

    A path that is not a folder is yielded as given, whatever its suffix and even if missing,
    so that reading it reports its own error.
    """
    for path in paths:
        if path.is_dir():
            yield from sorted(
                p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
            )
        else:
            yield path
