"""Snapshot, thumbnail and clip from real frames (the sample video as JPEGs): the clip decodes
with an independent decoder (OpenCV) to every frame, at the capture times."""

from __future__ import annotations

import os
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from harclip.messages import Frame
from stream.evidence.media import ClipCodec, ClipPreset, build_clip, decode, nearest, thumbnail

T0 = 1_764_000_000_000


@pytest.fixture(scope="module")
def frames() -> list[Frame]:
    video = sorted(Path(os.environ["HARCLIP_SAMPLE_DATA"], "video").glob("*.mp4"))[0]
    cap = cv2.VideoCapture(str(video))
    out = []
    for i in range(24):
        ok, img = cap.read()
        assert ok, f"{video} has fewer than 24 frames"
        img = cv2.resize(img, (320, 180))
        jpeg = bytes(cv2.imencode(".jpg", img)[1])
        out.append(Frame(f"F{i}", "cam", i, T0 + i * 100 + (i % 3), jpeg))  # ~10 fps, jitter
    cap.release()
    return out


def test_nearest_and_thumbnail(frames: list[Frame]) -> None:
    f = nearest(frames, T0 + 549)
    assert f is not None and f.seq == 5
    assert nearest([], T0) is None
    thumb = thumbnail(frames[0].data, 160)
    assert thumb is not None
    img = decode(thumb)
    assert img is not None and max(img.shape[:2]) == 160
    assert thumbnail(b"not a jpeg", 160) is None


@pytest.mark.parametrize(
    ("codec", "preset", "container", "content_type"),
    [("h264", "superfast", "mp4", "video/mp4"), ("h264", "ultrafast", "mp4", "video/mp4"),
     ("vp8", "superfast", "webm", "video/webm")],
)  # fmt: skip
def test_the_clip_decodes_to_every_frame_at_its_capture_time(
    frames: list[Frame], tmp_path: Path, codec: ClipCodec, preset: ClipPreset, container: str,
    content_type: str,
) -> None:  # fmt: skip
    corrupt = Frame("bad", "cam", 99, T0 + 1150, b"\xff\xd8 broken")
    clip = build_clip([*frames[:12], corrupt, *frames[12:]], codec, preset)
    assert clip is not None
    assert (clip.container, clip.content_type) == (container, content_type)
    assert (clip.frames, clip.skipped) == (24, 1)
    assert (clip.first_captured_at, clip.last_captured_at) == (T0, frames[-1].captured_at)
    path = tmp_path / f"clip.{container}"
    path.write_bytes(clip.data)
    cap = cv2.VideoCapture(str(path))
    decoded = []
    while True:
        ok, img = cap.read()
        if not ok:
            break
        decoded.append(img)
    assert len(decoded) == 24
    first = decode(frames[0].data)
    assert first is not None
    diff = np.abs(decoded[0].astype(int) - first.astype(int)).mean()
    assert diff < 12  # the first frame of the clip is the first frame (lossy)
    with av.open(str(path)) as c:
        pts = [round(vf.pts * vf.time_base * 1000) for vf in c.decode(video=0)]  # ms
        tags = {k.lower(): v for k, v in c.metadata.items()}
    assert pts == [f.captured_at - T0 for f in frames]  # capture times kept (ms)
    assert tags["harclip_first_captured_at"] == str(T0)


def test_no_decodable_frame_is_no_clip() -> None:
    assert build_clip([Frame("bad", "cam", 0, T0, b"junk")]) is None
