"""Keyframe selection on a scripted sequence."""

from __future__ import annotations

import numpy as np

from consumers.keyframes import KeyframePolicy


def unit(*xs: float) -> np.ndarray:
    v = np.array(xs, np.float32)
    return v / np.linalg.norm(v)


def test_first_label_change_distance_and_time_make_keyframes() -> None:
    policy = KeyframePolicy(distance=0.05, every_s=10)
    a, near, far = unit(1, 0, 0), unit(1, 0.1, 0), unit(1, 1, 0)
    script = [  # (frame, ms, label, embedding, expected keyframe)
        ("f0", 0, "run", a, "f0"),  # first of the stream
        ("f1", 200, "run", near, "f0"),  # 1 - cos = 0.005: same scene
        ("f2", 400, "walk", near, "f2"),  # top-1 label changed
        ("f3", 600, "walk", near, "f2"),
        ("f4", 800, "walk", far, "f4"),  # moved: 1 - cos = 0.26
        ("f5", 10_800, "walk", far, "f5"),  # 10 s since the last keyframe
        ("f6", 11_000, "walk", far, "f5"),
    ]
    for frame, at, label, emb, want in script:
        assert policy.decide("cam", frame, at, label, emb) == want, frame
    assert policy.decide("other", "g0", 11_000, "walk", far) == "g0"  # streams are separate
    policy.forget({"cam"})
    assert policy.decide("cam", "f7", 11_200, "walk", far) == "f7"


def test_disabled_every_frame_is_a_keyframe() -> None:
    policy = KeyframePolicy(distance=1.0, every_s=3600, enabled=False)
    assert [policy.decide("cam", f"f{i}", i, "run", unit(1, 0)) for i in range(3)] == [
        "f0", "f1", "f2",
    ]  # fmt: skip
