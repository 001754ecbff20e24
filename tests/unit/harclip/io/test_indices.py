"""harclip.io.indices without Elasticsearch: names, mappings, templates, retention."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from pydantic import ValidationError

from harclip.config import ElasticsearchSettings
from harclip.io import indices
from harclip.io.indices import DatedIndex, EmbeddingSpace
from harclip.messages import Prediction

SPACE = EmbeddingSpace("CLIP ViT-B/32 HAR", "1.2", 512)


def test_names_carry_the_space_and_the_capture_day() -> None:
    s = ElasticsearchSettings()
    assert SPACE.slug == "clip-vit-b-32-har-v1-2-512d"
    at = 1_764_288_000_000 - 1  # 2025-11-27 23:59:59.999 UTC
    assert indices.predictions_index(s, SPACE, at) == (
        "harclip-predictions-clip-vit-b-32-har-v1-2-512d-2025.11.27"
    )
    assert indices.daily_index(s, "events", at + 1) == "harclip-events-2025.11.28"
    assert indices.space_pattern(s, SPACE) == "harclip-predictions-clip-vit-b-32-har-v1-2-512d-*"


def test_predictions_mapping_types_every_prediction_field() -> None:
    props = indices.predictions_mappings(512)["properties"]
    fields = {f.alias or name for name, f in Prediction.model_fields.items()}
    assert set(props) - {"embedding", "keyframe_id"} <= fields
    assert props["embedding"] == {
        "type": "dense_vector", "dims": 512, "element_type": "byte", "index": True,
        "similarity": "cosine",
    }  # fmt: skip
    assert props["captured_at"] == {"type": "date", "format": "epoch_millis"}
    for keyword in ("stream_id", "label"):
        assert props[keyword] == {"type": "keyword"}
    for by_id in ("frame_id", "keyframe_id"):  # doc values only
        assert props[by_id] == {"type": "keyword", "index": False}
    assert props["top_k"] == {"type": "object", "enabled": False}  # kept, not indexed


def test_quantized_embeddings_keep_their_direction() -> None:
    rng = np.random.default_rng(0)
    v = rng.standard_normal((200, 512)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    q = np.stack([indices.quantize(x) for x in v]).astype(np.float32)
    assert q.dtype == np.float32 and np.abs(q).max() == 127
    cos = (v * q).sum(axis=1) / np.linalg.norm(q, axis=1)
    assert cos.min() > 0.9999
    assert not indices.quantize(np.zeros(4, np.float32)).any()


def test_templates_alias_their_family_and_more_specific_patterns_win() -> None:
    s = ElasticsearchSettings(shards=2, replicas=1)
    by_name = {t["name"]: t for t in indices.templates(s, SPACE)}
    space = by_name[f"harclip-predictions-{SPACE.slug}"]
    assert space["index_patterns"] == [f"harclip-predictions-{SPACE.slug}-*"]
    assert space["template"]["aliases"] == {"harclip-predictions": {}}
    assert space["template"]["settings"]["number_of_shards"] == 2
    events = by_name["harclip-events"]
    assert events["template"]["aliases"] == {"harclip-events": {}}
    test_events = indices.templates(s.model_copy(update={"events_index": "harclip-events-abc"}),
                                    None)[0]  # fmt: skip
    assert test_events["priority"] > events["priority"]
    assert set(by_name) == {"harclip-events", "harclip-logs", f"harclip-predictions-{SPACE.slug}"}


def test_expired_keeps_the_last_days_of_each_family() -> None:
    s = ElasticsearchSettings(predictions_retention_days=2, logs_retention_days=1)
    today = dt.date(2025, 11, 27)

    def idx(family: indices.Family, days_ago: int) -> DatedIndex:
        d = today - dt.timedelta(days=days_ago)
        return DatedIndex(f"{family}-{d}", family, d, 0, 0)

    found = [idx("predictions", 0), idx("predictions", 1), idx("predictions", 2),
             idx("logs", 0), idx("logs", 1), idx("events", 300)]  # fmt: skip
    assert [i.name for i in indices.expired(found, s, today)] == [
        found[2].name, found[4].name,
    ]  # fmt: skip


def test_the_ilm_template_for_other_clusters_maps_as_the_daily_indices() -> None:
    import json
    from pathlib import Path

    infra = Path(__file__).parents[4] / "infra" / "elasticsearch"
    template = json.loads((infra / "index-template-ilm.json").read_text())
    assert template["template"]["mappings"] == indices.predictions_mappings(512)
    assert template["template"]["aliases"] == {"harclip-predictions": {}}
    policy = json.loads((infra / "ilm-policy.json").read_text())
    assert set(policy["policy"]["phases"]) == {"hot", "warm", "delete"}


def test_retention_knows_each_familys_exact_names() -> None:
    s = ElasticsearchSettings()
    day = indices.dt.date(2024, 2, 1)
    assert indices.index_day(s, "events", "harclip-events-2024.02.01") == day
    assert indices.index_day(s, "logs", "harclip-logs-2024.02.01") == day
    assert (
        indices.index_day(s, "predictions", f"harclip-predictions-{SPACE.slug}-2024.02.01") == day
    )
    for family, name in [
        ("events", "harclip-events-archive-2024.02.01"),
        ("logs", "harclip-logs-audit-2024.02.01"),
        ("logs", "harclip-logs-2024.02.30"),  # no such day: skipped, not a crash
        ("events", "harclip-events-2024.2.1"),
        ("predictions", "harclip-predictions-archive-2024.02.01"),
        ("predictions", "harclip-predictions-2024.02.01"),
        ("events", "harclip-logs-2024.02.01"),
    ]:
        assert indices.index_day(s, family, name) is None, name  # type: ignore[arg-type]


def test_retention_owns_only_indices_with_its_marker() -> None:
    s = ElasticsearchSettings()
    marked = {"mappings": {"_meta": {"managed_by": "harclip", "family": "events"}}}
    assert indices.owned(s, "events", marked)
    assert not indices.owned(s, "logs", marked)
    assert not indices.owned(s, "events", {"mappings": {"_meta": {"managed_by": "backup"}}})
    assert indices.owned(s, "events", {"mappings": {}, "aliases": {"harclip-events": {}}})
    assert not indices.owned(s, "events", {"mappings": {}, "aliases": {}})
    template = indices.templates(s, SPACE)[0]
    assert template["template"]["mappings"]["_meta"] == marked["mappings"]["_meta"]


@pytest.mark.parametrize(
    "names",
    [
        {"predictions_index": "harclip"},
        {"events_index": "harclip-logs"},
        {"logs_index": "harclip-events-audit"},
    ],
)
def test_overlapping_index_names_are_refused(names: dict[str, str]) -> None:
    with pytest.raises(ValidationError, match="index names overlap"):
        ElasticsearchSettings(**names)
