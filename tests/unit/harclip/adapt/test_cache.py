"""The cache adapter's math, its record on harclip.control and the holder's rules."""

from __future__ import annotations

from types import SimpleNamespace
from typing import cast

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from harclip.adapt.cache import Adapter, Applied, scopes_of
from harclip.adapt.holder import AdapterHolder, Published, score_top_k
from harclip.control import ControlMetrics, HeadInUse
from harclip.errors import MessageError
from harclip.messages import ModelRef
from harclip.model.bundle import Manifest
from harclip.model.head import Head

D = 8


def unit(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v, axis=-1, keepdims=True)).astype(np.float32)


def head() -> Head:
    w = unit(np.random.default_rng(0).standard_normal((2, D))).T  # [D, 2]
    return Head(("a", "b"), np.ascontiguousarray(w), np.zeros(2, np.float32), 10.0, 1)


def adapter(**kw: object) -> Adapter:
    keys = unit(np.eye(D, dtype=np.float32)[:3])
    doc: dict[str, object] = dict(
        version=7, scopes=("cam-1", "*"), labels=("b", "new"), keys=keys,
        values=np.array([0, 1, 1], np.int32), scope_of=np.array([1, 1, 0], np.int32),
        alpha=1.0, beta=5.0, model="m/1",
    )  # fmt: skip
    doc.update(kw)
    return Adapter(**doc)  # type: ignore[arg-type]


def test_logits_are_the_head_plus_the_scaled_cache_with_new_labels_appended() -> None:
    h, a = head(), adapter()
    ap = Applied.fit(a, h)
    assert ap.labels == ("a", "b", "new")
    x = unit(np.eye(D, dtype=np.float32)[[0, 1]])  # row 0 = key 0, row 1 = key 1
    z = ap.logits(x, np.array([1, 1]))
    base = h.logits(x)
    sims = x @ a.keys.T
    aff = np.exp(-a.beta * (1 - sims)) * (np.array([1, 1])[:, None] == a.scope_of[None, :])
    votes = np.stack([np.zeros(2), aff[:, 0], aff[:, 1]], axis=1)
    expect = np.concatenate([base, base.mean(axis=1, keepdims=True)], axis=1)
    expect += h.logit_scale * a.alpha * votes
    np.testing.assert_allclose(z, expect, rtol=1e-5, atol=1e-5)
    assert ap.top_k(x, np.array([1, 1]), 1)[1][0][0] == "new"  # learnt from examples alone


def test_scopes_pick_the_first_matching_glob_and_mask_other_scopes_keys() -> None:
    a = adapter()
    assert scopes_of(a, ["cam-1", "cam-2", "cam-1"]).tolist() == [0, 1, 0]
    only = adapter(scopes=("cam-*",), scope_of=np.zeros(3, np.int32))
    assert scopes_of(only, ["lobby"]).tolist() == [-1]
    ap = Applied.fit(a, head())
    x = unit(np.eye(D, dtype=np.float32)[[2]])  # key 2 lives in scope 0 (cam-1) only
    z_cam1 = ap.logits(x, np.array([0]))
    z_other = ap.logits(x, np.array([1]))
    assert z_cam1[0, 2] > z_other[0, 2]


def test_excluded_keys_do_not_vote() -> None:
    ap = Applied.fit(adapter(), head())
    x = unit(np.eye(D, dtype=np.float32)[[1]])
    with_self = ap.logits(x, np.array([1]))
    without = ap.logits(x, np.array([1]), exclude=np.array([[False, True, False]]))
    assert with_self[0, 2] > without[0, 2]


def test_the_record_round_trips_and_names_what_is_wrong() -> None:
    a = adapter(cv_score=0.5, feedback_count=3)
    b = Adapter.from_json(a.to_json())
    assert (b.version, b.scopes, b.labels, b.alpha, b.beta, b.cv_score) == (
        7, ("cam-1", "*"), ("b", "new"), 1.0, 5.0, 0.5)  # fmt: skip
    np.testing.assert_allclose(b.keys, a.keys, atol=1e-3)  # float16 on the wire
    doc = a.to_doc()
    for key, bad, what in [
        ("keys", "!!", "base64"), ("values", [0, 5, 1], "values"), ("alpha", -1, "alpha"),
        ("labels", ["b", "b"], "distinct"), ("embed_dim", 5, "multiple"), ("scopes", [], "scopes"),
        ("labels", ["x\n", "y"], "printable"), ("version", "1", "version"),
        ("sources", ["f1"], "sources"),
    ]:  # fmt: skip
        with pytest.raises(MessageError, match=what):
            Adapter.from_doc(doc | {key: bad})
    with pytest.raises(MessageError, match="schema"):
        Adapter.from_doc(doc | {"schema": "x"})


def manifest(dim: int = D) -> Manifest:
    """What the holder reads of a bundle's manifest: name, version, embedding size."""
    return cast(Manifest, SimpleNamespace(name="m", version="1", embed_dim=dim))


def test_the_holder_takes_newer_fitting_records_only_and_counts_refusals() -> None:
    metrics = ControlMetrics(CollectorRegistry())
    holder = AdapterHolder(manifest(), metrics)
    assert holder.offer(Published(adapter(), 10))
    assert not holder.offer(Published(adapter(version=8), 5))  # a replay: older
    assert not holder.offer(Published(adapter(version=9, keys=unit(np.ones((3, 4)))), 11))
    assert not holder.offer(Published(adapter(version=9, model="other/2"), 12))
    holder.offer_raw(b"{not json")
    assert holder.adapter is not None and holder.adapter.version == 7
    refused = {s.labels["reason"]: s.value for m in metrics.refused.collect() for s in m.samples
               if s.name.endswith("_total")}  # fmt: skip
    assert refused == {"embed_dim": 1, "model": 1, "malformed": 1}
    assert holder.offer(Published.from_control(Published(None, 20).to_control()))  # rollback
    assert holder.adapter is None


def test_score_top_k_marks_the_rows_the_adapter_applied_to() -> None:
    h = head()
    ref = ModelRef(name="m", version="1", head_version=1)
    in_use = HeadInUse(h, ref)
    a = adapter(scopes=("cam-*",), scope_of=np.zeros(3, np.int32))
    x = unit(np.eye(D, dtype=np.float32)[[1, 1]])
    top, models = score_top_k(in_use, Applied.fit(a, h), x, ["cam-1", "lobby"], 2)
    assert top[0][0][0] == "new" and models[0].adapter == 7
    assert {lb for lb, _ in top[1]} <= {"a", "b"} and models[1].adapter is None
    every, models = score_top_k(in_use, Applied.fit(a, h), x, ["cam-1", "cam-2"], 2)
    assert [m.adapter for m in models] == [7, 7] and every[1][0][0] == "new"
    alone, models = score_top_k(in_use, None, x, ["cam-1", "cam-2"], 2)
    assert alone == h.top_k(x, 2) and models == [ref, ref]
