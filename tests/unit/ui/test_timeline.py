"""Segments for the Gantt chart, from events (closed and open) or from raw predictions."""

from __future__ import annotations

from harclip.messages import Event, LabelScore, Latency, ModelRef, Prediction, StreamAction
from ui import timeline


def _event(type_: str, label: str, start: int, end: int | None, first_seq: int) -> Event:
    return Event.model_validate(
        {"event_id": f"{type_}-{first_seq}", "type": type_, "stream_id": "s", "label": label,
         "start": start, "end": end, "first_seq": first_seq, "score_mean": 0.5}
    )  # fmt: skip


def _pred(seq: int, label: str) -> Prediction:
    return Prediction(
        frame_id=f"f{seq}", stream_id="s", seq=seq, captured_at=1000 * seq, inferred_at=1000 * seq,
        label=label, score=0.5,
        top_k=[LabelScore(label=label, score=0.5), LabelScore(label="other", score=0.2)],
        model=ModelRef(name="m", version="1", head_version=1),
        latency_ms=Latency(queue=1, infer=1, total=2),
    )  # fmt: skip


def test_closed_and_open_segments_from_events() -> None:
    events = [
        _event("segment.start", "walking", 0, None, 0),
        _event("segment.end", "walking", 0, 5000, 0),
        _event("segment.start", "running", 5000, None, 50),
    ]
    action = StreamAction(stream_id="s", state="active", label="running", since=5000,
                          event_id="segment.start-50", updated_at=1)  # fmt: skip
    segs = timeline.from_events(events, action, until=9000)
    assert [(s.label, s.start, s.end, s.open) for s in segs] == [
        ("walking", 0, 5000, False),
        ("running", 5000, 9000, True),
    ]


def test_the_current_action_alone_is_an_open_segment() -> None:
    action = StreamAction(stream_id="s", state="active", label="sitting", since=100,
                          event_id="e", score=0.7, updated_at=1)  # fmt: skip
    (seg,) = timeline.from_events([], action, until=600)
    assert (seg.label, seg.start, seg.end, seg.open, seg.score) == ("sitting", 100, 600, True, 0.7)


def test_runs_of_the_raw_top_label() -> None:
    preds = [_pred(i, label) for i, label in enumerate("aabbba")][::-1]  # newest first
    segs = timeline.from_predictions(preds)
    assert [(s.label, s.start, s.end, s.source) for s in segs] == [
        ("a", 0, 2000, "predictions"),
        ("b", 2000, 5000, "predictions"),
        ("a", 5000, 5001, "predictions"),
    ]
    assert segs[-1].open


def test_score_rows_keep_the_most_frequent_labels() -> None:
    rows = timeline.score_rows([_pred(0, "a"), _pred(1, "a"), _pred(2, "b")], top=1)
    assert {r["label"] for r in rows} == {"a"}
    assert [r["captured_at"] for r in rows] == [0, 1000]
