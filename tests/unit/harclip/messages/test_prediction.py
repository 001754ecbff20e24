"""Prediction (JSON): round trips, and every malformed input raises `MessageError` naming what
is wrong."""

from __future__ import annotations

import json
from typing import Any

import pytest

from harclip.errors import MessageError
from harclip.messages import (
    PREDICTION_SCHEMA,
    LabelScore,
    Latency,
    ModelRef,
    Prediction,
    new_frame_id,
)


def _prediction() -> Prediction:
    return Prediction(
        frame_id=new_frame_id(),
        stream_id="cam-1",
        seq=3,
        captured_at=1_764_223_200_000,
        inferred_at=1_764_223_200_040,
        label="running",
        score=0.875,
        top_k=[LabelScore(label="running", score=0.875), LabelScore(label="cycling", score=0.1)],
        model=ModelRef(name="clip-vit-b-32-har", version="1", head_version=4, engine="onnx-int8"),
        latency_ms=Latency(queue=10.5, infer=20.25, total=40.0),
    )


def test_prediction_round_trips_through_json() -> None:
    p = _prediction()
    raw = p.to_json()
    assert Prediction.from_json(raw) == p
    assert Prediction.from_json(raw.decode()) == p
    doc = json.loads(raw)
    assert doc["schema"] == PREDICTION_SCHEMA
    assert set(doc) == {
        "schema", "frame_id", "stream_id", "seq", "captured_at", "inferred_at", "label",
        "score", "top_k", "model", "latency_ms",
    }  # fmt: skip
    assert doc["latency_ms"] == {"queue": 10.5, "infer": 20.25, "total": 40.0}
    assert doc["model"]["engine"] == "onnx-int8"
    assert p.to_dict() == doc


def test_a_prediction_written_before_the_engine_was_recorded_still_reads() -> None:
    doc = json.loads(_prediction().to_json())
    del doc["model"]["engine"]
    assert Prediction.from_json(json.dumps(doc)).model.engine is None


def _mutated(**change: Any) -> bytes:
    doc = json.loads(_prediction().to_json())
    for k, v in change.items():
        if v is ...:
            del doc[k]
        else:
            doc[k] = v
    return json.dumps(doc).encode()


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        (b"", "invalid Prediction"),
        (b"{not json", "invalid Prediction"),
        (b"[]", "invalid Prediction"),
        (_mutated(label=...), "label: Field required"),
        (_mutated(seq="three"), "seq:"),
        (_mutated(score=None), "score:"),
        (_mutated(top_k=[{"label": "x"}]), "top_k.0.score: Field required"),
        (_mutated(model={"name": "m", "version": "1"}), "model.head_version"),
        (_mutated(embedding=[0.1, 0.2]), "embedding: Extra inputs"),
        (_mutated(schema="harclip.prediction/2"), "unsupported schema 'harclip.prediction/2'"),
    ],
)
def test_a_malformed_prediction_is_refused(raw: bytes, says: str) -> None:
    with pytest.raises(MessageError, match=says.replace(".", r"\.")):
        Prediction.from_json(raw)


def test_predictions_are_immutable() -> None:
    p = _prediction()
    with pytest.raises(Exception):  # noqa: B017 - pydantic ValidationError
        p.label = "x"  # type: ignore[misc]
