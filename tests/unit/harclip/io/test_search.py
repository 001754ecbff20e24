"""harclip.io.search without Elasticsearch: mappings, templates and page cursors."""

from __future__ import annotations

import pytest

from harclip.config import ElasticsearchSettings
from harclip.errors import MessageError
from harclip.io import search
from harclip.messages import Prediction


def test_predictions_mapping_types_every_prediction_field() -> None:
    props = search.predictions_mappings(512)["properties"]
    fields = {f.alias or name for name, f in Prediction.model_fields.items()}
    assert fields | {"embedding"} == set(props)
    assert props["embedding"] == {
        "type": "dense_vector", "dims": 512, "index": True, "similarity": "cosine",
    }  # fmt: skip
    assert (
        props["captured_at"] == props["inferred_at"] == {"type": "date", "format": "epoch_millis"}
    )
    for keyword in ("frame_id", "stream_id", "label", "schema"):
        assert props[keyword] == {"type": "keyword"}
    assert props["score"] == {"type": "float"}
    assert "type" not in props["top_k"]  # a plain object, not nested


def test_templates_match_their_index_and_more_specific_names_win() -> None:
    s = ElasticsearchSettings(shards=2, replicas=1)
    general = search._template("harclip-predictions", s, {})
    specific = search._template("harclip-predictions-abc", s, {})
    assert general["index_patterns"] == ["harclip-predictions*"]
    assert general["template"]["settings"] == {"number_of_shards": 2, "number_of_replicas": 1}
    assert specific["priority"] > general["priority"]


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
    for bad in ("nope", "_x", "12_", "x_1", f"{2**60}_a"):
        with pytest.raises(MessageError):
            search.decode_cursor(bad)
