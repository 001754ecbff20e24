"""Capture sampling, encoding and options, without Kafka."""

from __future__ import annotations

import itertools
from pathlib import Path

import cv2
import numpy as np
import pytest

from harclip.errors import ConfigError
from harclip.messages import Frame
from producers import frames as frames_mod
from producers.camera import CameraOptions, Capture, check_options
from producers.frames import downscale, encode_jpeg


def capture(o: CameraOptions) -> tuple[Capture, list[Frame]]:
    frames: list[Frame] = []
    c = Capture(o, frames.append)
    c.run()
    assert c.error is None
    return c, frames


def test_file_source_is_sampled_to_the_target_rate(sample_videos: list[Path]) -> None:
    video = next(v for v in sample_videos if v.name == "demo_skeleton.mp4")  # 72 frames, 28 fps
    _, frames = capture(CameraOptions(str(video), "cam", fps=5, realtime=False))
    assert len(frames) == 13  # 0, 200, ..., 2400 ms of a 2.57 s clip
    assert [f.seq for f in frames] == list(range(13))
    assert all(a.captured_at <= b.captured_at for a, b in itertools.pairwise(frames))
    img = cv2.imdecode(np.frombuffer(frames[0].data, np.uint8), cv2.IMREAD_COLOR)
    assert min(img.shape[:2]) == 224  # 1920x1080 down-scaled to the model's input
    assert len({f.frame_id for f in frames}) == 13


def test_loop_starts_over_until_max_frames(sample_videos: list[Path]) -> None:
    video = next(v for v in sample_videos if v.name == "demo_skeleton.mp4")
    o = CameraOptions(str(video), "cam", fps=5, realtime=False, loop=True, max_frames=30)
    c, frames = capture(o)
    assert c.frames == 30 and len(frames) == 30


def test_pattern_source() -> None:
    _, frames = capture(CameraOptions("pattern", "p", fps=500, max_frames=5))
    assert len(frames) == 5 and frames[0].content_type == "image/jpeg"


@pytest.mark.parametrize(
    ("source", "fps", "message"),
    [("/no/such.mp4", 5.0, "not found"), ("ftp://x/y", 5.0, "unsupported"),
     ("pattern", 0.0, "fps"), ("pattern", float("nan"), "fps must be a finite number"),
     ("pattern", float("inf"), "fps must be a finite number")],
)  # fmt: skip
def test_bad_options(source: str, fps: float, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        check_options(CameraOptions(source, "s", fps=fps))


def test_source_kinds() -> None:
    assert CameraOptions("0", "s").kind == "webcam"
    assert CameraOptions("rtsp://h/x", "s").kind == "network"
    assert CameraOptions("a.mp4", "s").kind == "file"


def test_downscale_never_enlarges() -> None:
    small = np.zeros((100, 150, 3), np.uint8)
    assert downscale(small, 224) is small
    big = np.zeros((1080, 1920, 3), np.uint8)
    assert downscale(big, 224).shape == (224, 398, 3)
    assert downscale(big, 0) is big
    assert encode_jpeg(frames_mod.test_pattern(3))[:2] == b"\xff\xd8"
