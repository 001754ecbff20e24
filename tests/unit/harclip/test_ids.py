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
