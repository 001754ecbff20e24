"""The one stream-id rule (`harclip.ids`), shared by producers, worker, API and client."""

from __future__ import annotations

import pytest

from harclip.errors import MessageError
from harclip.ids import check_stream_id, stream_id_problem

VALID = ["cam-1", "lobby #2", "..", ".", "a%2Fb", "cam:1", "x" * 128, "カメラ 1", "a?b=c&d"]
INVALID = ["", "a/b", "/", "tab\there", "new\nline", "x" * 129, "nul\x00", "sep\u2028", "nb\xa0sp"]


@pytest.mark.parametrize("value", VALID)
def test_valid_ids(value: str) -> None:
    assert stream_id_problem(value) is None
    assert check_stream_id(value) == value


@pytest.mark.parametrize("value", INVALID)
def test_invalid_ids_say_why(value: str) -> None:
    assert stream_id_problem(value)
    with pytest.raises(MessageError, match="job id must be 1-128 printable characters without"):
        check_stream_id(value, "job id")


def test_the_deployment_stream_is_reserved_for_sources_only() -> None:
    from harclip.ids import RESERVED_STREAM_ID, check_source_stream_id, source_stream_id_problem
    from harclip.messages import DEPLOYMENT_STREAM

    assert RESERVED_STREAM_ID == DEPLOYMENT_STREAM == "*"
    assert stream_id_problem("*") is None  # readable: /streams/*/events
    assert source_stream_id_problem("*") == "is reserved for events about the whole deployment"
    assert source_stream_id_problem("cam-*") is None and source_stream_id_problem("a/b")
    with pytest.raises(MessageError, match="'\\*' is reserved"):
        check_source_stream_id("*")
