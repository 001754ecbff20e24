"""An event's pictures from its frames: the snapshot (the frame nearest the event's peak, JPEG
as captured), its thumbnail (longest side `thumbnail_px`) and the clip (`CLIP_CODEC`): H.264 in
MP4 (libx264 `superfast`, no B-frames; the default: about 1-3 ms of CPU a frame) or VP8 in WebM
(libvpx realtime: about 25 ms a frame here; for a browser built without H.264), both carried by
PyAV's wheel and played by Chromium in <video>. Each frame's pts is its capture time relative
to the first frame (time base 1 ms), so the clip runs at the capture rate; the first frame's
capture time (ms since epoch) is in the container's `harclip_first_captured_at` tag.

CPU-bound: it runs in the evidence worker processes (stream/evidence/worker.py).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Literal, cast

import cv2
import numpy as np

from harclip.messages import Frame

if TYPE_CHECKING:
    from av.video.stream import VideoStream

ClipCodec = Literal["h264", "vp8"]
ClipPreset = Literal["ultrafast", "superfast", "veryfast"]  # libx264's (H.264 clips only)


@dataclass(frozen=True, slots=True)
class Codec:
    encoder: str
    container: str  # also the key's extension
    content_type: str
    options: dict[str, str]
    muxer_options: dict[str, str]


CODECS: dict[str, Codec] = {
    "h264": Codec("libx264", "mp4", "video/mp4",
                  {"preset": "superfast", "tune": "zerolatency"},
                  {"movflags": "use_metadata_tags"}),
    "vp8": Codec("libvpx", "webm", "video/webm",
                 {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0"}, {}),
}  # fmt: skip
_BITRATE = 1_000_000  # bits/s of the clip
MAX_SHORT_SIDE = 480  # larger frames are scaled down in the clip (the snapshot keeps them)


@dataclass(frozen=True, slots=True)
class Clip:
    data: bytes
    container: str  # "mp4" or "webm"
    content_type: str
    frames: int  # frames in the clip
    skipped: int  # frames that did not decode
    first_captured_at: int
    last_captured_at: int


def nearest(frames: Sequence[Frame], at: int) -> Frame | None:
    """The frame captured nearest `at` (the earlier one on a tie), None without frames."""
    return min(frames, key=lambda f: (abs(f.captured_at - at), f.captured_at), default=None)


def decode(data: bytes) -> np.ndarray | None:
    """A BGR image, or None when `data` does not decode."""
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    return img if img is not None and img.size else None


def thumbnail(data: bytes, px: int) -> bytes | None:
    """A JPEG whose longest side is at most `px`; None when `data` does not decode."""
    img = decode(data)
    if img is None:
        return None
    h, w = img.shape[:2]
    scale = min(1.0, px / max(h, w))
    if scale < 1.0:
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        img = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 80])
    return bytes(buf) if ok else None


def build_clip(
    frames: Sequence[Frame], codec: ClipCodec = "h264", preset: ClipPreset = "superfast"
) -> Clip | None:
    """The frames (in capture order) as a clip; frames that do not decode are skipped, frames
    of another size are scaled to the first one's. None when no frame decodes. `preset`: H.264's
    (ultrafast: about 0.6x superfast's CPU at the same bitrate, a lower picture quality)."""
    import av  # a heavy import, only where clips are built

    images: list[tuple[int, np.ndarray]] = []
    skipped = 0
    for f in frames:
        img = decode(f.data)
        if img is None:
            skipped += 1
        elif not images or f.captured_at > images[-1][0]:  # pts strictly increase
            images.append((f.captured_at, img))
    if not images:
        return None
    first_at = images[0][0]
    h, w = images[0][1].shape[:2]
    scale = min(1.0, MAX_SHORT_SIDE / min(h, w))
    w2, h2 = round(w * scale), round(h * scale)
    w2, h2 = max(2, w2 - w2 % 2), max(2, h2 - h2 % 2)  # 4:2:0 wants even sides
    c = CODECS[codec]
    options = c.options | {"preset": preset} if codec == "h264" else c.options
    buf = io.BytesIO()
    with av.open(buf, "w", format=c.container, options=c.muxer_options) as out:
        out.metadata["harclip_first_captured_at"] = str(first_at)
        stream = cast("VideoStream", out.add_stream(c.encoder, rate=_rate(images),
                                                    options=options))  # fmt: skip
        stream.width, stream.height, stream.pix_fmt = w2, h2, "yuv420p"
        stream.bit_rate = _BITRATE
        stream.time_base = Fraction(1, 1000)
        stream.codec_context.time_base = Fraction(1, 1000)
        for at, img in images:
            if img.shape[1] != w2 or img.shape[0] != h2:
                img = cv2.resize(img, (w2, h2), interpolation=cv2.INTER_AREA)
            vf = av.VideoFrame.from_ndarray(img.astype(np.uint8, copy=False), format="bgr24")
            vf.pts, vf.time_base = at - first_at, Fraction(1, 1000)
            out.mux(stream.encode(vf))
        out.mux(stream.encode(None))
    return Clip(buf.getvalue(), c.container, c.content_type, len(images), skipped, first_at,
                images[-1][0])  # fmt: skip


def _rate(images: Sequence[tuple[int, np.ndarray]]) -> Fraction:
    """The mean frame rate (frames/s), for the encoder's rate control."""
    span = images[-1][0] - images[0][0]
    if len(images) < 2 or span <= 0:
        return Fraction(10)
    return Fraction(round((len(images) - 1) * 1000 / span)) or Fraction(1)
