"""The wire types: WebSocket messages read back through the discriminated union, errors carry
their status both ways, resume positions are checked, and Predictions keep their `schema` alias."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from harclip.messages import LabelScore, Latency, ModelRef, Prediction
from harclip.wire import (
    Ack,
    ApiError,
    Dropped,
    ErrorBody,
    ErrorMessage,
    Heartbeat,
    LabelSetRequest,
    PredictionMessage,
    PredictRequest,
    Resume,
    Subscribed,
    parse_server_message,
)

PRED = Prediction(
    frame_id="01J0000000000000000000000A", stream_id="cam-1", seq=3, captured_at=1_700_000_000_000,
    inferred_at=1_700_000_000_020, label="cycling", score=0.9,
    top_k=[LabelScore(label="cycling", score=0.9)],
    model=ModelRef(name="tiny", version="1", head_version=7),
    latency_ms=Latency(queue=1.0, infer=2.0, total=20.0),
)  # fmt: skip


@pytest.mark.parametrize(
    "message",
    [
        Subscribed(positions={"cam-1": "1700000000000-0"}),
        PredictionMessage(stream_id="cam-1", id="1700000000000-1", prediction=PRED),
        Heartbeat(at=1_700_000_000_000),
        Dropped(count=3, total=5, message="3 predictions dropped"),
        Ack(frame_id="01J0000000000000000000000A", seq=0),
        ErrorMessage(status=503, error={"code": "unavailable", "message": "Redis"}, seq=None),
    ],
)
def test_server_messages_round_trip(message: object) -> None:
    assert hasattr(message, "to_json")
    assert parse_server_message(message.to_json()) == message  # type: ignore[attr-defined]


def test_prediction_message_uses_the_prediction_json() -> None:
    text = PredictionMessage(stream_id="cam-1", id="1-0", prediction=PRED).to_json()
    assert '"schema":"harclip.prediction/1"' in text and "schema_" not in text


def test_unknown_or_malformed_messages_are_refused() -> None:
    for raw in ('{"type": "nope"}', '{"type": "ack"}', "not json", '{"type": "error"}'):
        with pytest.raises(ValidationError):
            parse_server_message(raw)


def test_a_newer_server_may_add_fields() -> None:
    assert parse_server_message('{"type": "heartbeat", "at": 5, "extra": 1}') == Heartbeat(at=5)


def test_api_error_as_body_and_ws_message_keeps_its_status() -> None:
    err = ApiError(415, "unsupported_media_type", "frame: not an image", {"X-A": "b"})
    assert err.body() == ErrorBody(error={"code": err.code, "message": err.message})
    message = err.message_for_ws(seq=4)
    assert (message.status, message.seq, message.error.code) == (415, 4, err.code)
    back = message.exception()
    assert (back.status, back.code, back.message) == (415, err.code, err.message)
    assert str(err) == "415 unsupported_media_type: frame: not an image"
    assert message.retry_after is None


def test_a_transient_refusal_tells_a_websocket_client_when_to_send_again() -> None:
    message = ApiError(429, "rate_limited", "slow down", {"Retry-After": "3"}).message_for_ws(2)
    assert message.retry_after == 3
    assert parse_server_message(message.to_json()) == message
    assert message.exception().headers == {"Retry-After": "3"}


def test_resume_positions() -> None:
    assert Resume.model_validate_json('{"type": "resume", "after": "17-2"}').after == "17-2"
    assert Resume.model_validate_json('{"type": "resume", "after": {"a": "17"}}').after == {
        "a": "17"
    }
    for bad in ('{"type": "resume", "after": "x-1"}', '{"type": "resume", "after": {"a": 1}}',
                '{"type": "resume", "after": "1-2", "more": 1}', '{"type": "other"}'):  # fmt: skip
        with pytest.raises(ValidationError):
            Resume.model_validate_json(bad)


def test_requests_refuse_unknown_fields_and_need_one_image_source() -> None:
    with pytest.raises(ValidationError):
        PredictRequest.model_validate({"image": "aGk=", "image_url": "http://x"})
    with pytest.raises(ValidationError):
        PredictRequest.model_validate({})
    with pytest.raises(ValidationError):
        LabelSetRequest.model_validate({"labels": ["a"], "colour": "red"})
    assert PredictRequest.model_validate({"image_url": "http://x", "top_k": 2}).top_k == 2
