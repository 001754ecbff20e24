"""The Watches page's pure parts: form text to a WatchSpec body and back, recent score rows."""

from __future__ import annotations

from harclip.messages import Latency, ModelRef, Prediction
from harclip.watches import WatchSpec
from ui.watchform import form_of, score_rows, watch_body


def test_form_round_trip_keeps_the_spec() -> None:
    spec = WatchSpec(name="fall", prompts=["a person lying on the floor", "fell"],
                     negatives=["a person standing"], streams=["lobby-*", "hall"], window=4,
                     pinned_threshold=0.8, severity="critical")  # fmt: skip
    body = watch_body(form_of(spec))
    assert WatchSpec.model_validate({**body, "name": "fall"}) == spec


def test_blanks_are_left_to_the_api_defaults() -> None:
    form = form_of(None) | {"prompts": " someone climbing \n\n", "pinned_threshold": 0.0,
                            "window": ""}  # fmt: skip
    body = watch_body(form)
    assert body["prompts"] == ["someone climbing"] and "window" not in body
    assert "pinned_threshold" not in body and "examples" not in body and body["streams"] == ["*"]
    assert WatchSpec.model_validate({**body, "name": "c"}).window == 1


def _pred(stream: str, watches: dict[str, float]) -> Prediction:
    return Prediction(frame_id=f"f-{stream}", stream_id=stream, seq=0, captured_at=1, inferred_at=2,
                      label="a", score=0.5, top_k=[], model=ModelRef(name="m", version="1",
                      head_version=1), latency_ms=Latency(queue=0, infer=0, total=0),
                      watches=watches)  # fmt: skip


def test_score_rows_best_first() -> None:
    rows = score_rows([_pred("a", {"x": 0.2, "y": 0.9}), _pred("b", {}), _pred("c", {"x": 0.5})])
    assert [(r["stream"], r["watch"], r["score"]) for r in rows] == [
        ("a", "y", 0.9), ("c", "x", 0.5), ("a", "x", 0.2)]  # fmt: skip
