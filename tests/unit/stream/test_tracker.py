"""The events app's state machine without Kafka: smoothing, hysteresis, segments and their
merging, alerts, idle handling, replays, and the state's round trip through its bytes."""

from __future__ import annotations

from harclip.messages import Event, Prediction, event_id
from harclip.rules import parse_rules
from stream.tracker import StreamState, Tracker, TrackerConfig

T0 = 1_764_000_000_000


def pred(
    seq: int, label: str, *, at: int | None = None, sid: str = "cam", score: float = 0.8
) -> Prediction:
    other = "fighting" if label != "fighting" else "running"
    top = [(label, score), (other, 0.1), ("sitting", 0.05)]
    return Prediction.model_validate({
        "frame_id": f"f{seq}", "stream_id": sid, "seq": seq,
        "captured_at": T0 + seq * 200 if at is None else at, "inferred_at": 0,
        "label": label, "score": score, "top_k": [{"label": lb, "score": s} for lb, s in top],
        "model": {"name": "m", "version": "1", "head_version": 3},
        "latency_ms": {"queue": 0, "infer": 0, "total": 0},
    })  # fmt: skip


def run(t: Tracker, labels: list[str], st: StreamState | None = None, start: int = 0,
        ) -> tuple[StreamState, list[Event]]:  # fmt: skip
    """Feed one prediction per label (5 fps); the final state and every event."""
    out: list[Event] = []
    for i, label in enumerate(labels, start):
        res = t.on_prediction(st, pred(i, label), wall_ms=1000 + i)
        assert res is not None
        st, evs = res
        out += evs
    assert st is not None
    return st, out


def kinds(evs: list[Event]) -> list[tuple[str, str | None]]:
    return [(e.type, e.label or e.rule) for e in evs]


def test_flicker_is_smoothed_away_and_the_switch_is_near_the_truth() -> None:
    labels = ["running"] * 50 + ["fighting"] * 50
    for i in (10, 23, 37, 70):  # single-frame flicker
        labels[i] = "fighting" if labels[i] == "running" else "running"
    st, evs = run(Tracker(TrackerConfig()), labels)
    assert kinds(evs) == [("stream.up", None), ("segment.start", "running"),
                          ("segment.end", "running"), ("segment.start", "fighting")]  # fmt: skip
    start_run, end_run, start_fight = evs[1], evs[2], evs[3]
    assert start_run.start == T0 and start_run.first_seq == 0
    assert abs(start_fight.start - (T0 + 10_000)) <= 1000  # type: ignore[operator]
    assert end_run.end == start_fight.start and end_run.last_seq + 1 == start_fight.first_seq  # type: ignore[operator]
    # segment.start waits until the new action spans min_segment_ms (1 s of capture time)
    assert start_fight.last_seq is not None
    assert (start_fight.last_seq - start_fight.first_seq) * 200 >= 1000
    assert end_run.frames == end_run.last_seq + 1  # type: ignore[operator]
    assert end_run.model is not None and end_run.model.head_version == 3
    assert st.open is not None and st.open.label == "fighting"


def test_a_segment_shorter_than_min_segment_is_merged_into_its_neighbour() -> None:
    # 800 ms of "fighting" inside "running": it leads long enough to switch (600 ms) but not
    # to make a segment (1 s)
    labels = ["running"] * 20 + ["fighting"] * 4 + ["running"] * 20
    _, evs = run(Tracker(TrackerConfig()), labels)
    assert kinds(evs) == [("stream.up", None), ("segment.start", "running")]
    # and the same with min_segment_ms <= min_hold_ms: now it is a segment
    _, evs = run(Tracker(TrackerConfig(min_segment_ms=600)), labels)
    assert [e.label for e in evs if e.type == "segment.start"] == ["running", "fighting", "running"]


def test_a_short_action_between_two_others_merges_into_the_earlier_one() -> None:
    labels = ["running"] * 20 + ["fighting"] * 4 + ["sitting"] * 20
    _, evs = run(Tracker(TrackerConfig()), labels)
    starts = [e for e in evs if e.type == "segment.start"]
    assert [e.label for e in starts] == ["running", "sitting"]
    end = next(e for e in evs if e.type == "segment.end")
    assert end.label == "running" and end.end == starts[1].start
    assert end.first_seq == 0 and end.last_seq + 1 == starts[1].first_seq  # type: ignore[operator]
    assert end.frames == end.last_seq + 1  # the short action's frames are in it


def test_stale_and_duplicate_predictions_are_ignored_but_a_restarted_producer_is_not() -> None:
    t = Tracker(TrackerConfig())
    st, _ = run(t, ["running"] * 10)
    assert t.on_prediction(st, pred(9, "running"), 0) is None  # duplicate
    assert t.on_prediction(st, pred(3, "running"), 0) is None  # replay
    # a producer that restarts at seq 0 with a newer capture time goes on
    assert t.on_prediction(st, pred(0, "running", at=T0 + 60_000), 0) is not None


def test_idle_closes_the_segment_then_the_next_prediction_is_stream_up() -> None:
    t = Tracker(TrackerConfig(idle_timeout_ms=10_000))
    st, _ = run(t, ["running"] * 10)
    assert t.on_idle(st, wall_ms=st.last_wall + 9_999) == []
    evs = t.on_idle(st, wall_ms=st.last_wall + 10_000)
    assert kinds(evs) == [("segment.end", "running"), ("stream.down", None)]
    assert evs[0].end == st.last_at and evs[1].last_seq == 9 and st.down
    assert t.on_idle(st, wall_ms=st.last_wall + 20_000) == []  # once
    st, evs = run(t, ["running"] * 6, st, start=10)
    assert kinds(evs) == [("stream.up", None), ("segment.start", "running")]
    assert evs[1].first_seq == 10


def test_label_rule_fires_after_for_seconds_and_respects_its_cooldown() -> None:
    rules = parse_rules("""
rules:
  - {name: fight, label: fighting, min_score: 0.6, for_seconds: 2, cooldown_seconds: 10,
     severity: critical, streams: ["cam*"]}
  - {name: other, labels: [fighting], streams: ["elsewhere"]}
""")
    t = Tracker(TrackerConfig(), rules)
    _, evs = run(t, ["fighting"] * 100)  # 20 s
    alerts = [e for e in evs if e.type == "alert"]
    assert [a.rule for a in alerts] == ["fight", "fight"]  # at ~2 s, then again after 10 s
    first, second = alerts
    assert first.severity == "critical" and first.label == "fighting"
    assert first.end - first.start >= 2000  # type: ignore[operator]
    assert second.end - first.end >= 10_000  # type: ignore[operator]
    assert first.event_id == event_id("cam", "alert", first.last_seq, "fight")  # type: ignore[arg-type]


def test_stream_down_rule_fires_once_per_silence() -> None:
    rules = parse_rules("rules: [{name: lost, stream_down_after_seconds: 30, cooldown_seconds: 0}]")
    t = Tracker(TrackerConfig(idle_timeout_ms=10_000), rules)
    st, _ = run(t, ["running"] * 10)
    assert [e.type for e in t.on_idle(st, st.last_wall + 10_000)] == ["segment.end", "stream.down"]
    evs = t.on_idle(st, st.last_wall + 30_000)
    assert [(e.type, e.rule, e.last_seq) for e in evs] == [("alert", "lost", 9)]
    assert t.on_idle(st, st.last_wall + 60_000) == []
    st, _ = run(t, ["running"], st, start=10)
    assert [e.rule for e in t.on_idle(st, st.last_wall + 30_000) if e.rule] == ["lost"]


def test_state_round_trips_through_bytes_and_continues_identically() -> None:
    labels = ["running"] * 30 + ["fighting"] * 30
    t = Tracker(TrackerConfig())
    _, whole = run(t, labels)
    st, first = run(t, labels[:40])
    copy = StreamState.from_bytes(st.to_bytes())
    _, rest = run(t, labels[40:], copy, start=40)
    assert [e.model_dump(exclude={"emitted_at"}) for e in first + rest] == [
        e.model_dump(exclude={"emitted_at"}) for e in whole
    ]


def test_event_ids_are_deterministic() -> None:
    _, a = run(Tracker(TrackerConfig()), ["running"] * 10)
    _, b = run(Tracker(TrackerConfig()), ["running"] * 10)
    assert [e.event_id for e in a] == [e.event_id for e in b]
    assert len({e.event_id for e in a}) == len(a)


def test_peak_at_is_the_capture_time_of_the_highest_smoothed_score() -> None:
    rules = "rules: [{name: fight, labels: [fighting], min_score: 0.5, for_seconds: 2}]"
    t = Tracker(TrackerConfig(), parse_rules(rules))
    out: list[Event] = []
    st: StreamState | None = None
    # running, then fighting whose score climbs to 0.99 at seq 45 and falls back
    for i in range(70):
        label = "running" if i < 20 else "fighting" if i < 60 else "sitting"
        score = 0.99 if i == 45 else 0.6
        res = t.on_prediction(st, pred(i, label, score=score), wall_ms=1000 + i)
        assert res is not None
        st, evs = res
        out += evs
    starts = [e for e in out if e.type == "segment.start"]
    ends = [e for e in out if e.type == "segment.end"]
    alert = next(e for e in out if e.type == "alert")
    fight_start = next(e for e in starts if e.label == "fighting")
    fight_end = next(e for e in ends if e.label == "fighting")
    assert fight_end.peak_at == T0 + 45 * 200  # the smoothed max is at the raw peak
    assert fight_start.peak_at is not None and fight_start.start is not None
    assert fight_start.start <= fight_start.peak_at < T0 + 45 * 200  # the max so far
    assert alert.peak_at is not None and alert.start is not None and alert.end is not None
    assert alert.start <= alert.peak_at <= alert.end
    run_end = next(e for e in ends if e.label == "running")
    assert run_end.peak_at is not None and run_end.start is not None and run_end.end is not None
    assert run_end.start <= run_end.peak_at < run_end.end
    # the state round trip keeps it, and a state of before peak_at (3-element scores) loads
    assert st is not None and st.open is not None
    back = StreamState.from_bytes(st.to_bytes())
    assert back.open is not None and back.open.scores == st.open.scores
    old = st.open.to_list()
    old[6] = {lb: acc[:3] for lb, acc in old[6].items()}
    assert all(acc[3] == old[1] for acc in type(st.open).from_list(old).scores.values())
