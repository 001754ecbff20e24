"""harclip.io.search without Elasticsearch: query filters and page cursors."""

from __future__ import annotations

import pytest

from harclip.errors import MessageError
from harclip.io import search


def test_filters_combine_every_given_condition() -> None:
    assert search._filters(None, None, None, None, None) == []
    f = search._filters("cam", 10, 20, "running", 0.5)
    assert {"term": {"stream_id": "cam"}} in f
    assert {"term": {"label": "running"}} in f
    assert {"range": {"captured_at": {"gte": 10, "lt": 20}}} in f
    assert {"range": {"score": {"gte": 0.5}}} in f


def test_page_cursors_round_trip_and_refuse_anything_else() -> None:
    after = (1_764_223_200_000, "01J0000000000000000000000A")
    assert search.decode_cursor(search.encode_cursor(after)) == after
    for bad in ("nope", "_x", "12_", "x_1", f"{2**60}_a", "²_a"):
        with pytest.raises(MessageError):
            search.decode_cursor(bad)
