"""harclip.io.search and harclip.io.indices against the real Elasticsearch: daily indices per
embedding space behind one alias, bulk with `_id` (replays overwrite), kNN over keyframes with the
frames they stand for, history across models and days, retention, rejected documents."""

from __future__ import annotations

from collections.abc import AsyncIterator

import numpy as np
import pytest
from elasticsearch import AsyncElasticsearch

from harclip.config import ElasticsearchSettings
from harclip.errors import ConfigError, ReadUnavailable, SinkRefused, SinkUnavailable
from harclip.io import indices, search
from harclip.io.es import make_es
from harclip.io.indices import EmbeddingSpace
from harclip.messages import LabelScore, Latency, ModelRef, Prediction, new_frame_id
from tests.support.scoped import Unique

DIM = 16
T0 = 1_764_223_200_000  # ms since epoch: 2025-11-27 06:00 UTC
DAY_MS = 86_400_000
SPACE = EmbeddingSpace("tiny", "1", DIM)


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
    client = make_es(s)
    yield client
    await client.close()


Indexed = list[search.Indexed]


@pytest.fixture
async def indexed(es: AsyncElasticsearch, s: ElasticsearchSettings) -> Indexed:
    """20 predictions over two streams and three labels, every 4th a keyframe standing for the
    next three, indexed and visible."""
    await indices.ensure_templates(es, s, SPACE)
    labels = ["running", "sitting", "eating"]
    preds = [_pred(f"cam-{i % 2}", i, labels[i % 3], 0.3 + 0.03 * i) for i in range(20)]
    rows = _unit_rows(20)
    items = [
        search.Indexed(p, rows[i] if i % 4 == 0 else None, preds[i - i % 4].frame_id)
        for i, p in enumerate(preds)
    ]
    await search.index_predictions(es, s, SPACE, items)
    await es.indices.refresh(index=s.predictions_index)
    return items


async def _count(es: AsyncElasticsearch, s: ElasticsearchSettings) -> int:
    await es.indices.refresh(index=s.predictions_index)
    return int((await es.count(index=s.predictions_index))["count"])


async def test_a_day_of_one_space_is_an_index_behind_the_alias(
    es: AsyncElasticsearch, s: ElasticsearchSettings, indexed: Indexed
) -> None:
    await indices.ensure_templates(es, s, SPACE)  # idempotent
    name = indices.predictions_index(s, SPACE, T0)
    assert name == f"{s.predictions_index}-tiny-v1-16d-2025.11.27"
    assert await es.indices.exists_alias(name=s.predictions_index, index=name)
    props = (await es.indices.get_mapping(index=name))[name]["mappings"]["properties"]
    assert props["embedding"]["dims"] == DIM and props["keyframe_id"]["type"] == "keyword"
    assert props["top_k"] == {"type": "object", "enabled": False}
    settings = (await es.indices.get_settings(index=name))[name]["settings"]["index"]
    assert settings["codec"] == "best_compression"


async def test_a_plain_index_named_like_the_alias_is_a_clear_error(
    es: AsyncElasticsearch, s: ElasticsearchSettings
) -> None:
    await es.indices.create(index=s.predictions_index)  # as an old version made it
    with pytest.raises(ConfigError, match=rf"{s.predictions_index}' is a plain index"):
        await indices.ensure_templates(es, s, SPACE)


async def test_replayed_bulk_overwrites_by_frame_id(
    es: AsyncElasticsearch, s: ElasticsearchSettings, indexed: Indexed
) -> None:
    assert await _count(es, s) == 20
    await search.index_predictions(es, s, SPACE, indexed)
    assert await _count(es, s) == 20


async def test_knn_finds_keyframes_with_the_frames_they_stand_for(
    es: AsyncElasticsearch, s: ElasticsearchSettings, indexed: Indexed
) -> None:
    key = indexed[8]
    assert key.embedding is not None
    noisy = key.embedding + 0.01 * _unit_rows(1, seed=99)[0]
    hits = await search.knn(es, s, SPACE, noisy, k=3)
    assert hits[0].prediction == key.prediction and hits[0].similarity > 0.98  # int8 HNSW
    assert hits[0].similarity >= hits[1].similarity >= hits[2].similarity
    assert hits[0].frames == 4  # itself and the next three
    assert (hits[0].first_at, hits[0].last_at) == (T0 + 8000, T0 + 11000)
    assert all(h.prediction.seq % 4 == 0 for h in hits)  # only keyframes carry vectors

    only = await search.knn(es, s, SPACE, key.embedding, k=5, stream_id="cam-1")  # key: cam-0
    assert all(h.prediction.stream_id == "cam-1" for h in only)
    # a non-keyframe frame stands behind its keyframe's embedding
    found = await search.frame_embedding(es, s, SPACE, indexed[10].prediction.frame_id)
    assert found is not None and found[0] == indexed[10].prediction
    got = found[1] / np.linalg.norm(found[1])  # stored as int8: the same direction
    assert float(got @ key.embedding) > 0.9999
    assert await search.frame_embedding(es, s, SPACE, "no-such-frame") is None


async def test_history_spans_models_and_days_search_stays_in_its_space(
    es: AsyncElasticsearch, s: ElasticsearchSettings, indexed: Indexed
) -> None:
    other = EmbeddingSpace("bigger", "2", 32)
    await indices.ensure_templates(es, s, other)
    later = _pred("cam-0", 100, "running", 0.9).model_copy(update={"captured_at": T0 + DAY_MS})
    vec = np.ones(32, np.float32) / np.sqrt(32)
    await search.index_predictions(es, s, other, [search.Indexed(later, vec, later.frame_id)])
    await es.indices.refresh(index=s.predictions_index)
    newest = await search.history(es, s, stream_id="cam-0", size=2)
    assert newest.items[0] == later and newest.items[1] == indexed[18].prediction
    assert [h.prediction for h in await search.knn(es, s, other, vec, k=5)] == [later]
    assert all(h.prediction != later for h in await search.knn(es, s, SPACE, _unit_rows(1)[0]))


async def test_history_pages_in_time_order_with_filters(
    es: AsyncElasticsearch, s: ElasticsearchSettings, indexed: Indexed
) -> None:
    preds = [i.prediction for i in indexed]
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


async def test_retention_deletes_old_days_and_reads_go_on(
    es: AsyncElasticsearch, s: ElasticsearchSettings, indexed: Indexed
) -> None:
    old = _pred("cam-0", 0, "running", 0.5).model_copy(update={"captured_at": T0 - 40 * DAY_MS})
    await search.index_predictions(es, s, SPACE, [search.Indexed(old, None, old.frame_id)])
    found = await indices.dated_indices(es, s)
    names = {i.name for i in found}
    assert indices.predictions_index(s, SPACE, old.captured_at) in names
    today = indices.dt.date(2025, 11, 27)
    expired = indices.expired(found, s, today)  # 30 days of predictions kept
    assert [i.name for i in expired] == [indices.predictions_index(s, SPACE, old.captured_at)]
    await indices.delete_indices(es, [i.name for i in expired])
    await es.indices.refresh(index=s.predictions_index)
    page = await search.history(es, s, size=50)
    assert len(page.items) == 20 and old not in page.items
    assert await search.knn(es, s, SPACE, _unit_rows(1)[0], k=2)  # still answers


async def test_a_rejected_document_is_named_and_not_retriable(
    es: AsyncElasticsearch, s: ElasticsearchSettings
) -> None:
    await indices.ensure_templates(es, s, SPACE)
    good, bad = _pred("cam", 0, "running", 0.5), _pred("cam", 1, "running", 0.5)
    wrong = np.ones(DIM + 1, dtype=np.float32)
    items = [search.Indexed(good, _unit_rows(1)[0], good.frame_id),
             search.Indexed(bad, wrong, bad.frame_id)]  # fmt: skip
    with pytest.raises(SinkRefused, match=rf"1 of 2 documents; first {bad.frame_id}") as e:
        await search.index_predictions(es, s, SPACE, items)
    assert list(e.value.frames) == [bad.frame_id]
    assert "more dimensions" in e.value.frames[bad.frame_id]


async def test_an_unreachable_elasticsearch_is_a_retriable_sink_error(
    s: ElasticsearchSettings,
) -> None:
    dead = make_es(s.model_copy(update={"url": "http://127.0.0.1:1"}))
    item = search.Indexed(_pred("a", 0, "x", 0.1), _unit_rows(1)[0], "a")
    try:
        with pytest.raises(SinkUnavailable, match="Elasticsearch") as e:
            await search.index_predictions(dead, s, SPACE, [item])
        assert e.value.retriable
        with pytest.raises(ReadUnavailable, match="Elasticsearch history"):
            await search.history(dead, s, stream_id="a")
    finally:
        await dead.close()


async def test_retention_deletes_only_the_daily_indices_it_owns(
    es: AsyncElasticsearch, s: ElasticsearchSettings, indexed: Indexed
) -> None:
    """Indices under a family's prefix that end in a date but are not its daily indices (an
    archive, another tool's, a backup, one made without harclip's template marker, an
    impossible date) are neither listed nor deleted, and nothing crashes."""
    ours = [f"{s.events_index}-2020.01.01", f"{s.logs_index}-2020.01.01",
            indices.predictions_index(s, SPACE, T0 - 400 * DAY_MS)]  # fmt: skip
    foreign = [
        f"{s.events_index}-archive-2020.01.01",
        f"{s.logs_index}-audit-2020.01.01",
        f"{s.events_index}-backup-before-migration-2020.01.01",
        f"{s.predictions_index}-{SPACE.slug}-copy-2020.01.01",
        f"{s.logs_index}-2024.02.30",  # from the template, but no such day
    ]
    for name in ours + foreign:
        await es.indices.create(index=name)
    unmarked = f"{s.events_index}-2020.01.02"  # another tool's, under our name grammar
    await es.indices.create(index=unmarked, mappings={"_meta": {"managed_by": "someone-else"}})
    found = {i.name for i in await indices.dated_indices(es, s)}
    assert set(ours) <= found and not found & {*foreign, unmarked}
    today = indices.dt.date(2025, 11, 27)
    old = [i.name for i in indices.expired(await indices.dated_indices(es, s), s, today)]
    assert sorted(old) == sorted(ours)
    await indices.delete_indices(es, old)
    for name in [*foreign, unmarked]:
        assert await es.indices.exists(index=name), name
    for name in ours:
        assert not await es.indices.exists(index=name), name
