"""Frame (Kafka headers) and Prediction (JSON): round trips, and every malformed input raises
`MessageError` naming what is wrong."""

from __future__ import annotations

import json
from typing import Any

import pytest

from harclip.errors import MessageError
from harclip.messages import (
    FRAME_SCHEMA,
    PREDICTION_SCHEMA,
    Frame,
    LabelScore,
    Latency,
    ModelRef,
    Prediction,
    header_value,
    new_frame_id,
    now_ms,
)

TRACE = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def _frame(**kw: Any) -> Frame:
    base: dict[str, Any] = {
        "frame_id": new_frame_id(),
        "stream_id": "cam-1",
        "seq": 7,
        "captured_at": 1_764_223_200_123,
        "data": b"\xff\xd8\xff\xe0jpeg",
    }
    return Frame(**{**base, **kw})


def _headers(frame: Frame, **replace: bytes | None) -> list[tuple[str, bytes]]:
    """The frame's headers with some values replaced (None: header removed)."""
    out = []
    for k, v in frame.headers():
        if k in replace:
            new = replace[k]
            if new is None:
                continue
            v = new
        out.append((k, v))
    return out


def _decode(headers: list[tuple[str, bytes]], value: bytes | None = b"jpeg") -> Frame:
    return Frame.from_kafka(b"cam-1", value, headers)


# ----------------------------------------------------------------------------- Frame


@pytest.mark.parametrize("traceparent", [None, TRACE])
def test_frame_round_trips_through_headers(traceparent: str | None) -> None:
    f = _frame(traceparent=traceparent, content_type="image/png")
    assert Frame.from_kafka(f.stream_id.encode(), f.data, f.headers()) == f


def test_frame_headers_follow_design() -> None:
    h = dict(_frame(traceparent=TRACE).headers())
    assert h["schema"] == FRAME_SCHEMA.encode() == b"harclip.frame/1"
    assert h["seq"] == b"7"
    assert h["captured_at"] == b"1764223200123"
    assert h["content_type"] == b"image/jpeg"
    assert h["traceparent"] == TRACE.encode()
    assert "traceparent" not in dict(_frame().headers())


def test_unknown_headers_are_ignored_and_content_type_defaults() -> None:
    f = _frame()
    got = _decode([*_headers(f, content_type=None), ("x-extra", b"\x00\xff")], f.data)
    assert got.content_type == "image/jpeg"
    assert got.frame_id == f.frame_id


@pytest.mark.parametrize("name", ["schema", "frame_id", "stream_id", "seq", "captured_at"])
def test_a_missing_header_is_named(name: str) -> None:
    with pytest.raises(MessageError, match=f"missing header '{name}'"):
        _decode(_headers(_frame(), **{name: None}))


@pytest.mark.parametrize("name", ["seq", "captured_at"])
@pytest.mark.parametrize("value", [b"seven", b"1.5", b"", b"0x10"])
def test_a_non_integer_number_is_named(name: str, value: bytes) -> None:
    with pytest.raises(MessageError, match=f"'{name}'.*must be integers"):
        _decode(_headers(_frame(), **{name: value}))


@pytest.mark.parametrize("name", ["seq", "captured_at"])
def test_a_negative_number_is_named(name: str) -> None:
    with pytest.raises(MessageError, match=f"'{name}'.*non-negative"):
        _decode(_headers(_frame(), **{name: b"-1"}))


@pytest.mark.parametrize("name", ["schema", "frame_id", "stream_id", "seq", "content_type"])
def test_a_header_that_is_not_utf8_is_named(name: str) -> None:
    with pytest.raises(MessageError, match=f"header '{name}' is not UTF-8"):
        _decode(_headers(_frame(), **{name: b"\xff\xfe\xfa"}))


@pytest.mark.parametrize("schema", [b"harclip.frame/2", b"harclip.prediction/1", b""])
def test_another_schema_is_refused(schema: bytes) -> None:
    with pytest.raises(MessageError, match=r"unsupported schema.*harclip\.frame/1"):
        _decode(_headers(_frame(), schema=schema))


@pytest.mark.parametrize("name", ["frame_id", "stream_id"])
@pytest.mark.parametrize("value", [b"", b"a/b", b"tab\there", b"x" * 129])
def test_a_bad_id_is_named(name: str, value: bytes) -> None:
    with pytest.raises(MessageError, match=f"{name} must be 1-128 printable"):
        _decode(_headers(_frame(), **{name: value}))


@pytest.mark.parametrize("value", [b"", None])
def test_an_empty_value_is_refused(value: bytes | None) -> None:
    with pytest.raises(MessageError, match="empty frame"):
        _decode(_headers(_frame()), value)


def test_header_value_is_best_effort() -> None:
    headers = [("error", b"bad \xff jpeg"), ("frame_id", b"F1")]
    assert header_value(headers, "frame_id") == "F1"
    assert header_value(headers, "error") == "bad \ufffd jpeg"
    assert header_value(headers, "missing") is None


def test_frame_ids_are_unique_and_sort_by_time() -> None:
    ids = [new_frame_id(1_700_000_000_000 + i) for i in range(200)]
    assert len(set(ids)) == 200
    assert ids == sorted(ids)
    assert all(len(i) == 26 for i in ids)
    assert len({new_frame_id(5) for _ in range(100)}) == 100  # same ms: random part differs
    assert abs(now_ms() - int(__import__("time").time() * 1000)) < 1000


# ----------------------------------------------------------------------------- Prediction


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


def test_messages_are_immutable() -> None:
    p = _prediction()
    with pytest.raises(Exception):  # noqa: B017 - pydantic ValidationError / dataclass error
        p.label = "x"  # type: ignore[misc]
    f = _frame()
    with pytest.raises(AttributeError):
        f.seq = 1  # type: ignore[misc]
