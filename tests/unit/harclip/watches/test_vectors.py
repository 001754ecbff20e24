"""Watch vectors: prompts through the tiny CLIP's text encoder, examples as embeddings, versions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from harclip.model.bundle import Bundle
from harclip.model.text import TextEncoder
from harclip.watches import DEFAULT_NEGATIVES, WatchSpec
from harclip.watches.vectors import (
    WatchError,
    build_watch,
    empty_set,
    with_watch,
    without_watch,
)


@pytest.fixture(scope="module")
def encoder(tiny_bundle: Path) -> TextEncoder:
    return Bundle.load(tiny_bundle).text_encoder()


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)  # type: ignore[no-any-return]


def test_positive_is_the_renormalised_mean_of_prompts_and_examples(encoder: TextEncoder) -> None:
    spec = WatchSpec(name="fall", prompts=["a person lying on the floor", "someone fell"],
                     examples=["f1"], negatives=["a person standing"])  # fmt: skip
    example = np.arange(32, dtype=np.float32)[None] - 10  # any length: normalised
    w = build_watch(spec, encoder, example, embed_dim=32)
    units = np.concatenate([encoder.encode(spec.prompts), _unit(example[0])[None]])
    np.testing.assert_allclose(w.positive, _unit(units.mean(axis=0)), atol=1e-5)
    assert len(w.negatives) == 1
    np.testing.assert_allclose(w.negatives[0], encoder.encode(["a person standing"])[0], atol=1e-5)
    assert w.version == 1 and np.isclose(np.linalg.norm(w.positive), 1.0, atol=1e-5)


def test_default_negatives_when_none_are_given(encoder: TextEncoder) -> None:
    w = build_watch(WatchSpec(name="a", prompts=["x"]), encoder, embed_dim=32)
    np.testing.assert_allclose(w.negatives, encoder.encode(list(DEFAULT_NEGATIVES)), atol=1e-5)


def test_bad_inputs_name_the_field(encoder: TextEncoder) -> None:
    spec = WatchSpec(name="a", prompts=["ok", "word " * 60])
    with pytest.raises(WatchError) as e:
        build_watch(spec, encoder, embed_dim=32)
    assert e.value.field == "prompts[1]" and "tokens" in str(e.value)
    long_negative = WatchSpec(name="a", prompts=["ok"], negatives=["word " * 60])
    with pytest.raises(WatchError, match=r"negatives\[0\]"):
        build_watch(long_negative, encoder, embed_dim=32)
    with pytest.raises(WatchError, match="examples"):
        build_watch(WatchSpec(name="a", examples=["f"]), encoder, np.ones((1, 8)), embed_dim=32)
    with pytest.raises(WatchError, match=r"examples\[0\]"):
        build_watch(WatchSpec(name="a", examples=["f"]), encoder, np.zeros((1, 32)), embed_dim=32)
    with pytest.raises(WatchError, match="dim"):
        build_watch(WatchSpec(name="a", prompts=["x"]), encoder, embed_dim=16)


def test_versions_grow_with_changes_only(encoder: TextEncoder) -> None:
    s0 = empty_set(32)
    a = build_watch(WatchSpec(name="a", prompts=["x"]), encoder, embed_dim=32)
    s1 = with_watch(s0, a)
    assert s1.version > s0.version and [w.spec.name for w in s1.watches] == ["a"]
    assert with_watch(s1, a) is s1  # nothing changed
    a2 = build_watch(WatchSpec(name="a", prompts=["x"], window=4), encoder, embed_dim=32)
    s2 = with_watch(s1, a2)
    assert s2.version > s1.version and s2.watches[0].version == 2
    b = build_watch(WatchSpec(name="b", prompts=["y"]), encoder, embed_dim=32)
    s3 = with_watch(s2, b)
    assert [(w.spec.name, w.version) for w in s3.watches] == [("a", 2), ("b", 1)]
    s4 = without_watch(s3, "a")
    assert s4.version > s3.version and [w.spec.name for w in s4.watches] == ["b"]
    with pytest.raises(WatchError) as e:
        without_watch(s4, "a")
    assert e.value.status == 404
