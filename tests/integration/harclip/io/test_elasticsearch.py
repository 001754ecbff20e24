"""harclip.io.search against the real Elasticsearch: templates, bulk with `_id` (replays overwrite),
kNN on the dense_vector, history pages, dims mismatch, rejected documents."""

from __future__ import annotations

from collections.abc import AsyncIterator

import numpy as np
import pytest
from elasticsearch import AsyncElasticsearch

from harclip.config import ElasticsearchSettings
from harclip.errors import ConfigError, ReadUnavailable, SinkRefused, SinkUnavailable
from harclip.io import search
from harclip.messages import LabelScore, Latency, ModelRef, Prediction, new_frame_id
from tests.integration.conftest import Unique

DIM = 16
T0 = 1_764_223_200_000  # ms since epoch


def _pred(stream_id: str, seq: int, label: str, score: float) -> Prediction:
    at = T0 + 1000 * seq
    return Prediction(
        frame_id=new_frame_id(at),
        stream_id=stream_id,
        seq=seq,
        captured_at=at,
        inferred_at=at + 30,
        label=label,
        score=score,
        top_k=[LabelScore(label=label, score=score)],
        model=ModelRef(name="tiny", version="1", head_version=2),
        latency_ms=Latency(queue=1.0, infer=2.0, total=3.0),
    )


def _unit_rows(n: int, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return v  # [n, DIM], unit rows


@pytest.fixture
def s(unique: Unique) -> ElasticsearchSettings:
    return unique.settings.elasticsearch


@pytest.fixture
async def es(s: ElasticsearchSettings) -> AsyncIterator[AsyncElasticsearch]:
    client = search.make_es(s)
    yield client
    await client.close()


@pytest.fixture
async def indexed(
    es: AsyncElasticsearch, s: ElasticsearchSettings
) -> list[tuple[Prediction, np.ndarray]]:
    """20 predictions over two streams and three labels, indexed and visible."""
    await search.ensure_templates(es, s, DIM)
    labels = ["running", "sitting", "eating"]
    preds = [_pred(f"cam-{i % 2}", i, labels[i % 3], 0.3 + 0.03 * i) for i in range(20)]
    items = list(zip(preds, _unit_rows(20), strict=True))
    await search.index_predictions(es, s, items)
    await es.indices.refresh(index=s.predictions_index)
    return items


async def _count(es: AsyncElasticsearch, s: ElasticsearchSettings) -> int:
    await es.indices.refresh(index=s.predictions_index)
    return int((await es.count(index=s.predictions_index))["count"])


async def test_templates_are_idempotent_and_map_the_embedding(
    es: AsyncElasticsearch, s: ElasticsearchSettings
) -> None:
    await search.ensure_templates(es, s, DIM)
    await search.ensure_templates(es, s, DIM)
    assert await search.embedding_dims(es, s) == DIM
    mapping = (await es.indices.get_mapping(index=s.predictions_index))[s.predictions_index]
    props = mapping["mappings"]["properties"]
    assert props["embedding"]["type"] == "dense_vector"
    assert props["captured_at"] == {"type": "date", "format": "epoch_millis"}
    assert props["stream_id"]["type"] == "keyword"
    assert await es.indices.exists(index=s.events_index)


async def test_other_dims_name_the_index_and_both_sizes(
    es: AsyncElasticsearch, s: ElasticsearchSettings
) -> None:
    await search.ensure_templates(es, s, DIM)
    with pytest.raises(ConfigError, match=rf"{s.predictions_index}.*{DIM} dims.*makes 32"):
        await search.ensure_templates(es, s, 32)


async def test_replayed_bulk_overwrites_by_frame_id(
    es: AsyncElasticsearch, s: ElasticsearchSettings, indexed: list[tuple[Prediction, np.ndarray]]
) -> None:
    assert await _count(es, s) == 20
    await search.index_predictions(es, s, indexed)
    assert await _count(es, s) == 20
    doc = await es.get(index=s.predictions_index, id=indexed[3][0].frame_id)
    assert doc["_source"]["frame_id"] == indexed[3][0].frame_id


async def test_knn_finds_the_nearest_and_applies_filters(
    es: AsyncElasticsearch, s: ElasticsearchSettings, indexed: list[tuple[Prediction, np.ndarray]]
) -> None:
    pred, emb = indexed[7]
    noisy = emb + 0.01 * _unit_rows(1, seed=99)[0]
    hits = await search.knn(es, s, noisy, k=3)
    assert hits[0].prediction == pred
    assert hits[0].similarity > 0.99
    assert hits[0].similarity >= hits[1].similarity >= hits[2].similarity

    others = await search.knn(es, s, emb, k=5, stream_id="cam-0")  # pred is on cam-1
    assert others and all(h.prediction.stream_id == "cam-0" for h in others)
    high = await search.knn(es, s, emb, k=20, min_score=0.8)
    assert {h.prediction.frame_id for h in high} == {
        p.frame_id for p, _ in indexed if p.score >= 0.8
    }


async def test_history_pages_in_time_order_with_filters(
    es: AsyncElasticsearch, s: ElasticsearchSettings, indexed: list[tuple[Prediction, np.ndarray]]
) -> None:
    preds = [p for p, _ in indexed]
    seen: list[Prediction] = []
    cursor = None
    while True:
        page = await search.history(es, s, size=6, cursor=cursor, order="asc")
        seen += page.items
        if page.next is None:
            break
        cursor = page.next
    assert seen == preds

    newest = await search.history(es, s, stream_id="cam-0", label="running", size=2)
    expected = [p for p in reversed(preds) if p.stream_id == "cam-0" and p.label == "running"]
    assert newest.items == expected[:2]

    window = await search.history(es, s, start_ms=preds[5].captured_at, end_ms=preds[8].captured_at)
    assert [p.seq for p in window.items] == [7, 6, 5]


async def test_a_rejected_document_is_named_and_not_retriable(
    es: AsyncElasticsearch, s: ElasticsearchSettings
) -> None:
    await search.ensure_templates(es, s, DIM)
    good, bad = _pred("cam", 0, "running", 0.5), _pred("cam", 1, "running", 0.5)
    wrong = np.ones(DIM + 1, dtype=np.float32)
    with pytest.raises(SinkRefused, match=rf"1 of 2 documents; first {bad.frame_id}") as e:
        await search.index_predictions(es, s, [(good, _unit_rows(1)[0]), (bad, wrong)])
    assert list(e.value.frames) == [bad.frame_id]
    assert "more dimensions" in e.value.frames[bad.frame_id]


async def test_an_unreachable_elasticsearch_is_a_retriable_sink_error(
    s: ElasticsearchSettings,
) -> None:
    dead = search.make_es(s.model_copy(update={"url": "http://127.0.0.1:1"}))
    try:
        with pytest.raises(SinkUnavailable, match="Elasticsearch") as e:
            await search.index_predictions(dead, s, [(_pred("a", 0, "x", 0.1), _unit_rows(1)[0])])
        assert e.value.retriable
        with pytest.raises(ReadUnavailable, match="Elasticsearch history"):
            await search.history(dead, s, stream_id="a")
    finally:
        await dead.close()
