"""The one JSON codec (`harclip.messages.base.Message`): the bytes on the wire are those of
DESIGN.md, exactly as before the codec was shared (field order, `schema` first, nulls kept)."""

from __future__ import annotations

import pytest

from harclip.errors import MessageError
from harclip.messages import Event, LabelScore, Latency, ModelRef, Prediction, event_id

PREDICTION_BYTES = (
    b'{"schema":"harclip.prediction/1","frame_id":"01KB0000000000000000000000",'
    b'"stream_id":"cam-1","seq":7,"captured_at":1764223200123,"inferred_at":1764223200150,'
    b'"label":"running","score":0.8125,"top_k":[{"label":"running","score":0.8125},'
    b'{"label":"walking","score":0.1}],"model":{"name":"clip-vit-b32","version":"1",'
    b'"head_version":3,"engine":"onnx-int8"},"latency_ms":{"queue":1.5,"infer":12.25,'
    b'"total":27.0}}'
)
EVENT_BYTES = (
    b'{"schema":"harclip.event/1","event_id":"d3c2a9905cf2bf72b0dd26b32e2edc67","type":"alert",'
    b'"stream_id":"cam-1","label":"fighting","start":1764223200123,"end":null,"first_seq":12,'
    b'"last_seq":12,"frames":1,"score_mean":0.75,"score_max":0.9,"rule":"fight",'
    b'"severity":"critical","model":{"name":"clip-vit-b32","version":"1","head_version":3,'
    b'"engine":null},"emitted_at":1764223201000,"peak_at":null,"evidence":null}'
)
# an event as written before `peak_at` and `evidence` existed (still read)
EVENT_BYTES_V0 = EVENT_BYTES.replace(b',"peak_at":null,"evidence":null}', b"}")


def test_a_prediction_encodes_to_the_same_bytes_and_back() -> None:
    p = Prediction(
        frame_id="01KB0000000000000000000000", stream_id="cam-1", seq=7,
        captured_at=1764223200123, inferred_at=1764223200150, label="running", score=0.8125,
        top_k=[LabelScore(label="running", score=0.8125), LabelScore(label="walking", score=0.1)],
        model=ModelRef(name="clip-vit-b32", version="1", head_version=3, engine="onnx-int8"),
        latency_ms=Latency(queue=1.5, infer=12.25, total=27.0),
    )  # fmt: skip
    assert p.to_json() == PREDICTION_BYTES
    assert Prediction.from_json(PREDICTION_BYTES) == p
    assert Prediction.from_json(PREDICTION_BYTES).to_json() == PREDICTION_BYTES


def test_an_event_encodes_to_the_same_bytes_and_back() -> None:
    e = Event(
        event_id=event_id("cam-1", "alert", 12, "fight"), type="alert", stream_id="cam-1",
        label="fighting", start=1764223200123, first_seq=12, last_seq=12, frames=1,
        score_mean=0.75, score_max=0.9, rule="fight", severity="critical",
        model=ModelRef(name="clip-vit-b32", version="1", head_version=3), emitted_at=1764223201000,
    )  # fmt: skip
    assert e.to_json() == EVENT_BYTES
    assert Event.from_json(EVENT_BYTES) == e
    assert Event.from_json(EVENT_BYTES.decode()).to_json() == EVENT_BYTES
    assert Event.from_json(EVENT_BYTES_V0) == e


def test_an_event_with_evidence_round_trips() -> None:
    from harclip.messages import Evidence

    e = Event.from_json(EVENT_BYTES).model_copy(
        update={"peak_at": 1764223200500,
                "evidence": Evidence(snapshot="evidence/cam-1/2025-11-27/x.jpg", frames=25,
                                     first_captured_at=1764223197123)}
    )  # fmt: skip
    assert Event.from_json(e.to_json()) == e
    assert Event.from_json(e.to_json()).evidence == e.evidence
    missing = e.model_copy(update={"evidence": Evidence(missing="frames_expired")})
    assert Event.from_json(missing.to_json()).evidence == Evidence(missing="frames_expired")


def test_each_message_checks_its_own_schema_and_names_its_type() -> None:
    with pytest.raises(MessageError, match="invalid Event: event_id: Field required"):
        Event.from_json(PREDICTION_BYTES)
    with pytest.raises(MessageError, match=r"unsupported schema 'harclip\.event/1'"):
        Prediction.from_json(PREDICTION_BYTES.replace(b"prediction/1", b"event/1"))
    with pytest.raises(MessageError, match="invalid Prediction: frame_id: Field required"):
        Prediction.from_json(b'{"schema":"harclip.prediction/1"}')


def test_fields_added_later_are_left_out_while_empty_and_kept_when_set() -> None:
    p = Prediction.from_json(PREDICTION_BYTES)
    assert b"watches" not in p.to_json() and b"adapter" not in p.to_json()
    model = p.model.model_copy(update={"adapter": 3})
    q = p.model_copy(update={"watches": {"fall": 0.9}, "model": model})
    raw = q.to_json()
    assert b'"watches":{"fall":0.9}' in raw and b'"adapter":3' in raw
    assert Prediction.from_json(raw) == q
    e = Event.from_json(EVENT_BYTES)
    assert b'"watch"' not in e.to_json()
    w = e.model_copy(update={"watch": "fall", "type": "watch.start"})
    assert Event.from_json(w.to_json()) == w
