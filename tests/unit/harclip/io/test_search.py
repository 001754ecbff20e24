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


@pytest.mark.parametrize("with_extras", [False, True])
def test_bulk_documents_from_the_json_equal_those_from_the_model(with_extras: bool) -> None:
    """The worker hands over each Prediction's JSON (made once for Kafka and Redis): the bulk
    documents read from it are those `to_dict()` makes (omitted fields stay omitted)."""
    import asyncio
    from typing import Any

    import numpy as np

    from harclip.config import ElasticsearchSettings
    from harclip.io.indices import EmbeddingSpace
    from harclip.messages import ModelRef
    from tests.support.api import prediction

    p = prediction("cam-1", 3, "running", 0.875)
    if with_extras:
        model = ModelRef(name="m", version="1", head_version=2, engine="onnx-int8", adapter=4)
        p = p.model_copy(update={"watches": {"fall": 0.25}, "model": model})
    emb = np.linspace(-1, 1, 8, dtype=np.float32)
    bodies: list[list[Any]] = []

    class Es:
        async def bulk(self, operations: list[Any], filter_path: str) -> dict[str, Any]:
            bodies.append(operations)
            return {"errors": False}

    s, space = ElasticsearchSettings(), EmbeddingSpace("m", "1", 8)
    for json in (None, p.to_json()):
        item = search.Indexed(p, emb, p.frame_id, thumbnail="thumbs/x.jpg", json=json)
        asyncio.run(search.index_predictions(Es(), s, space, [item]))  # type: ignore[arg-type]
    (a_op, a_doc), (b_op, b_doc) = bodies
    assert a_op == b_op
    a_emb, b_emb = a_doc.pop(search.EMBEDDING), b_doc.pop(search.EMBEDDING)
    assert np.array_equal(np.asarray(a_emb), np.asarray(b_emb))
    assert a_doc == b_doc
    assert bodies[0][1]["thumbnail"] == "thumbs/x.jpg"
    assert ("watches" in bodies[1][1]) is with_extras
    assert ("adapter" in bodies[1][1]["model"]) is with_extras
