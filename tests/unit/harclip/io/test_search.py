"""harclip.io.search without Elasticsearch: query filters."""

from __future__ import annotations

from harclip.io import search


def test_filters_combine_every_given_condition() -> None:
    assert search._filters(None, None, None, None, None) == []
    f = search._filters("cam", 10, 20, "running", 0.5)
    assert {"term": {"stream_id": "cam"}} in f
    assert {"term": {"label": "running"}} in f
    assert {"range": {"captured_at": {"gte": 10, "lt": 20}}} in f
    assert {"range": {"score": {"gte": 0.5}}} in f
