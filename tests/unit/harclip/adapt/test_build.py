"""Building a candidate from feedback: usable items, caps, k-fold CV and the champion's score."""

from __future__ import annotations

import numpy as np
import pytest

from harclip.adapt.build import (
    Item,
    NotEnoughFeedback,
    build_candidate,
    champion_score,
    cross_validate,
    fold_of,
    make_cache,
    usable_items,
)
from harclip.config.adapt import AdaptSettings
from harclip.messages import ModelRef
from harclip.messages.feedback import Feedback
from harclip.model.head import Head

D = 16


def clusters(n_per: int, labels: tuple[str, ...], seed: int = 0, noise: float = 0.2) -> list[Item]:
    """Items around one random centre per label (separable), given_at = their order."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((len(labels), D))
    out = []
    for i in range(n_per * len(labels)):
        c = i % len(labels)
        e = centres[c] + noise * rng.standard_normal(D)
        out.append(
            Item(
                f"fb-{seed}-{i}", "cam-1", labels[c], i, (e / np.linalg.norm(e)).astype(np.float32)
            )
        )
    return out


def random_head(labels: tuple[str, ...] = ("a", "b", "c")) -> Head:
    w = np.random.default_rng(9).standard_normal((D, len(labels))).astype(np.float32)
    w /= np.linalg.norm(w, axis=0)
    return Head(labels, w, np.zeros(len(labels), np.float32), 20.0, 1)


def feedback(
    fid: str, frame: str, label: str | None, at: int, emb: list[float] | None, **kw: object
) -> Feedback:
    return Feedback(feedback_id=fid, target="frame", frame_id=frame, stream_id="cam-1",
                    verdict="wrong", label=label, by="ops", given_at=at, embedding=emb,
                    **kw)  # type: ignore[arg-type]  # fmt: skip


def test_usable_items_keep_the_latest_verdict_per_frame_and_say_why_others_are_left_out() -> None:
    e = [1.0] + [0.0] * (D - 1)
    docs = [
        feedback("1", "f1", "a", 1, e), feedback("2", "f1", "b", 2, e),  # the later wins
        feedback("3", "f2", None, 3, e), feedback("4", "f3", "a", 4, None),
        feedback("5", "f4", "a", 5, [1.0, 0.0]),
        feedback("6", "f5", "a", 6, e, model=ModelRef(name="other", version="1", head_version=1)),
        feedback("7", "f6", "c", 7, [2.0] + [0.0] * (D - 1)),
    ]  # fmt: skip
    u = usable_items(docs, D, "m/1")
    assert [(i.feedback_id, i.label) for i in u.items] == [("2", "b"), ("7", "c")]
    assert np.isclose(np.linalg.norm(u.items[1].embedding), 1.0)
    assert u.skipped == {"superseded": 1, "none": 1, "no_embedding": 1, "embed_dim": 1,
                         "other_model": 1}  # fmt: skip


def test_the_embedding_s_own_model_decides_over_the_judged_prediction_s() -> None:
    """The API recomputes a frame's embedding with its own model when the history's keyframe is
    another model's: the document names the old model that served the frame, `embedding_model`
    the space the vector is in, and only the latter must match the bundle."""
    e = [1.0] + [0.0] * (D - 1)
    v0, v1 = (ModelRef(name="m", version=v, head_version=1) for v in ("0", "1"))
    docs = [
        feedback("1", "f1", "a", 1, e, model=v0, embedding_model="m/1"),  # recomputed: usable
        feedback("2", "f2", "a", 2, e, model=v1, embedding_model="m/0"),
    ]
    u = usable_items(docs, D, "m/1")
    assert [i.feedback_id for i in u.items] == ["1"]
    assert u.skipped == {"other_model": 1}


def test_the_cache_keeps_the_newest_per_label_and_scope_within_the_total_cap() -> None:
    items = clusters(10, ("a", "b"))
    c = make_cache(items, ["*"], per_label_cap=3, max_keys=100, dim=D)
    assert sorted(np.bincount(c.values).tolist()) == [3, 3]
    newest = [it.embedding for it in items[-6:]]
    assert all(any(np.allclose(k, e, atol=1e-3) for e in newest) for k in c.keys)
    assert len(make_cache(items, ["*"], per_label_cap=8, max_keys=5, dim=D).values) <= 5
    two = make_cache(items, ["cam-*", "*"], per_label_cap=2, max_keys=100, dim=D)
    assert np.bincount(two.scope_of).tolist() == [4, 4]  # an item serves every scope it is in


def test_cross_validation_finds_a_mixing_weight_that_beats_a_random_head() -> None:
    items = clusters(12, ("a", "b", "c"))
    head = random_head()
    s = AdaptSettings(folds=4)
    cv = cross_validate(items, head, ["*"], s)
    assert cv.accuracy.shape == (len(s.alphas), len(s.betas)) and cv.scored == len(items)
    alpha, beta, acc = cv.best
    assert acc > 0.9 > champion_score(None, items, head)
    cand = build_candidate(items, head, ["*"], s, version=3, model="m/1")
    assert (cand.alpha, cand.beta, cand.cv_score, cand.feedback_count) == (alpha, beta, acc, 36)
    assert champion_score(cand, items, head) > 0.9  # scored leaving each item's own key out


def test_labels_from_examples_alone_are_learnt() -> None:
    items = clusters(10, ("a", "juggling"), seed=2)
    cand = build_candidate(items, random_head(), ["*"], AdaptSettings(folds=5), version=1, model="")
    assert "juggling" in cand.labels and cand.cv_score is not None and cand.cv_score > 0.9


def test_too_little_feedback_is_refused_and_folds_are_stable() -> None:
    with pytest.raises(NotEnoughFeedback, match="3 usable"):
        cross_validate(clusters(1, ("a", "b", "c")), random_head(), ["*"], AdaptSettings())
    assert fold_of("abc", 5) == fold_of("abc", 5) and 0 <= fold_of("x", 3) < 3


def test_settings_grids_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        AdaptSettings(alphas=(0.0, 1.0))
