"""Per-camera calibration of a watch's threshold (harclip/watches/calibration.py, firing.py)."""

from __future__ import annotations

import random

import pytest

from harclip.messages import ModelRef
from harclip.watches import Watch, WatchSpec
from harclip.watches.calibration import (
    MIN_FRAMES,
    Calibration,
    per_frame_quantile,
)
from harclip.watches.firing import WatchState, close, step

MODEL = ModelRef(name="m", version="1", head_version=1)
FPS = 5
DT = 1000 // FPS


def watch(**spec: object) -> Watch:
    base: dict[str, object] = {
        "name": "fall",
        "prompts": ["a person lying on the floor"],
        "min_duration_seconds": 1.0,
        "cooldown_seconds": 10.0,
    }
    return Watch(spec=WatchSpec.model_validate(base | spec), version=1, positive=[1.0, 0.0],
                 negatives=[[0.0, 1.0]])  # fmt: skip


def background(rng: random.Random, base: float, spread: float = 0.03) -> float:
    return min(1.0, max(0.0, rng.gauss(base, spread)))


def play(st: WatchState, w: Watch, scores: list[float], t0: int = 0, seq0: int = 0) -> list:
    out = []
    for i, s in enumerate(scores):
        out += step(st, w, "cam", seq0 + i, t0 + i * DT, s, MODEL, t0 + i * DT)
    return out


def test_the_per_frame_quantile_is_one_minus_target_over_frames() -> None:
    assert per_frame_quantile(1.0, 18000.0) == pytest.approx(1 - 1 / 18000)
    assert per_frame_quantile(1e6, 100.0) == 0.0
    assert per_frame_quantile(1.0, 0.0) == 1.0


def test_calibrating_until_enough_history_then_calibrated() -> None:
    rng = random.Random(1)
    w = watch(threshold=0.9)
    cal = Calibration()
    for i in range(MIN_FRAMES - 10):
        cal.add(background(rng, 0.3), i * DT, 1000)
    assert cal.threshold(w.spec) == (0.9, "calibrating")
    for i in range(MIN_FRAMES - 10, 2000):
        cal.add(background(rng, 0.3), i * DT, 1000)
    x, source = cal.threshold(w.spec)
    assert source == "calibrated"
    assert 0.3 < x < 0.6
    assert cal.frames_per_hour == pytest.approx(FPS * 3600)


def test_pinned_threshold_overrides() -> None:
    cal = Calibration()
    for i in range(3000):
        cal.add(0.2, i * DT, 0)
    assert cal.threshold(watch(pinned_threshold=0.7).spec) == (0.7, "pinned")


def test_drifted_cameras_get_different_thresholds_and_the_same_rate() -> None:
    """Two cameras whose scores sit at different baselines (CLIP drift): each gets a threshold
    above its own background, and both stay within the target rate."""
    w = watch(false_alarms_per_hour=20.0, threshold=0.5)
    hours = 2
    n = FPS * 3600 * hours
    results = {}
    for cam, base in (("low", 0.2), ("high", 0.45)):
        rng = random.Random(cam)
        st = WatchState()
        scores = [background(rng, base, 0.05) for _ in range(n)]
        events = play(st, w, scores)
        calibrated = [
            e for e in events if e.type == "watch.start" and e.calibration == "calibrated"
        ]
        results[cam] = (st.cal.threshold(w.spec)[0], len(calibrated))
    (low_x, low_n), (high_x, high_n) = results["low"], results["high"]
    assert high_x - low_x > 0.15  # each its own threshold
    for fired in (low_n, high_n):
        assert fired <= 20 * hours * 1.5  # within the target (at most, one per crossing)
    # the raw (absolute 0.5) threshold would fire all the time on the high camera only
    rng = random.Random("high")
    assert sum(background(rng, 0.45, 0.05) >= 0.5 for _ in range(n)) > 0.1 * n


def test_a_scripted_episode_fires_once_and_ends_with_hysteresis() -> None:
    rng = random.Random(3)
    w = watch()
    st = WatchState()
    pre = [background(rng, 0.2) for _ in range(FPS * 600)]
    assert play(st, w, pre) == []  # quiet background: no firing at the target rate
    x, source = st.cal.threshold(w.spec)
    assert source == "calibrated"
    episode = [0.9] * (FPS * 5) + [x + 0.001] * FPS  # high, then just over: still open
    post = [background(rng, 0.2) for _ in range(FPS * 20)]
    events = play(st, w, episode + post, t0=len(pre) * DT, seq0=len(pre))
    assert [e.type for e in events] == ["watch.start", "watch.end"]
    start, end = events
    assert start.watch == "fall" and start.calibration == "calibrated"
    assert start.threshold == pytest.approx(x, abs=0.01)
    assert start.start == len(pre) * DT  # the first frame above the threshold
    assert start.first_seq == end.first_seq and start.event_id != end.event_id
    # it ends on the first frame under the hysteresis level, once the background is back
    assert (len(pre) + len(episode)) * DT <= end.end <= (len(pre) + len(episode) + FPS) * DT
    assert st.cal.low(x) < x
    assert end.score_max == pytest.approx(0.9)


def test_short_spikes_do_not_fire_and_cooldown_holds() -> None:
    w = watch(min_duration_seconds=1.0, cooldown_seconds=30.0, pinned_threshold=0.5)
    st = WatchState()
    spike = [0.9] * 3 + [0.1] * 10  # 600 ms above: shorter than min_duration
    assert play(st, w, spike) == []
    ep = [0.9] * 10 + [0.1] * 5
    events = play(st, w, ep * 3, t0=10_000, seq0=100)
    # the second and third episodes start within 30 s of the first's end
    assert [e.type for e in events] == ["watch.start", "watch.end"]


def test_close_ends_an_open_firing_at_its_last_frame() -> None:
    w = watch(pinned_threshold=0.5, min_duration_seconds=0)
    st = WatchState()
    (e,) = play(st, w, [0.9, 0.9])
    (end,) = close(st, w, "cam", MODEL, 99)
    assert (e.type, end.type, end.end) == ("watch.start", "watch.end", DT)


def test_state_round_trips_and_stays_small() -> None:
    rng = random.Random(4)
    w = watch()
    st = WatchState()
    play(st, w, [background(rng, 0.3, 0.1) for _ in range(FPS * 3600)])
    raw = st.to_bytes()
    assert len(raw) < 8000
    again = WatchState.from_bytes(raw)
    assert again.to_bytes() == raw
    assert again.cal.threshold(w.spec) == st.cal.threshold(w.spec)


def test_new_vectors_restart_the_calibration() -> None:
    w = watch()
    st = WatchState()
    play(st, w, [0.3] * 2000)
    assert st.cal.ready
    other = Watch(spec=w.spec, version=2, positive=[0.0, 1.0], negatives=[[1.0, 0.0]])
    step(st, other, "cam", 5000, 5000 * DT, 0.3, MODEL, 0)
    assert not st.cal.ready and st.cal.samples == 0


def test_watch_fields_are_left_out_of_other_events() -> None:
    import orjson

    from harclip.messages import Event

    doc = orjson.loads(Event(event_id="e", type="alert", stream_id="cam", rule="r").to_json())
    assert not {"watch", "threshold", "calibration"} & doc.keys()
    st = WatchState()
    (start,) = play(st, watch(pinned_threshold=0.5, min_duration_seconds=0), [0.9])
    doc = orjson.loads(start.to_json())
    assert (doc["watch"], doc["threshold"], doc["calibration"]) == ("fall", 0.5, "pinned")
    assert Event.from_json(start.to_json()) == start
