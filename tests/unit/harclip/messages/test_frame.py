"""Frame (Kafka headers): round trips, and every malformed header raises `MessageError` naming
what is wrong."""

from __future__ import annotations

from typing import Any

import pytest

from harclip.errors import MessageError
from harclip.messages import (
    FRAME_SCHEMA,
    Frame,
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


def test_frames_under_the_deployment_stream_are_refused() -> None:
    with pytest.raises(MessageError, match=r"stream_id .*'\*' is reserved for events about the"):
        _decode(_headers(_frame(), stream_id=b"*"))
    assert _decode(_headers(_frame(), frame_id=b"*")).frame_id == "*"  # only the stream is


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


def test_frames_are_immutable() -> None:
    f = _frame()
    with pytest.raises(AttributeError):
        f.seq = 1  # type: ignore[misc]
