"""Head: logits formula, top-k, files, and the harclip.control message (round trip, rejects)."""

from __future__ import annotations

import base64
from pathlib import Path

import numpy as np
import orjson
import pytest

from harclip.errors import MessageError, ModelError
from harclip.model.head import CONTROL_SCHEMA, Head


def _head(c: int = 3, d: int = 4, version: int = 2) -> Head:
    rng = np.random.default_rng(0)
    return Head(
        labels=tuple(f"class{i}" for i in range(c)),
        weight=rng.standard_normal((d, c)).astype(np.float32),
        bias=rng.standard_normal(c).astype(np.float32),
        logit_scale=100.0,
        version=version,
        kind="fine-tuned",
        prompts={"class0": ["a photo of class0."]},
        created_at=1764223200000,
    )


def _same(a: Head, b: Head) -> None:
    assert (a.labels, a.logit_scale, a.version, a.kind, a.prompts, a.created_at) == (
        b.labels, b.logit_scale, b.version, b.kind, b.prompts, b.created_at,
    )  # fmt: skip
    np.testing.assert_array_equal(a.weight, b.weight)
    np.testing.assert_array_equal(a.bias, b.bias)


def test_logits_are_scaled_similarity_plus_bias() -> None:
    h = _head()
    emb = np.eye(2, 4, dtype=np.float32)
    np.testing.assert_allclose(h.logits(emb), 100.0 * emb @ h.weight + h.bias, rtol=1e-6)
    p = h.probs(emb)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-6)


def test_top_k_is_sorted_and_clipped_to_the_class_count() -> None:
    h = _head()
    emb = np.eye(2, 4, dtype=np.float32)
    top = h.top_k(emb, 10)
    assert [len(row) for row in top] == [3, 3]
    for row, p in zip(top, h.probs(emb), strict=True):
        assert [s for _, s in row] == sorted((float(x) for x in p), reverse=True)
        assert row[0][0] == h.labels[int(p.argmax())]


def test_logits_refuse_the_wrong_embedding_size() -> None:
    with pytest.raises(ModelError, match=r"\[N, 4\]"):
        _head().logits(np.zeros((2, 5), np.float32))


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    h = _head()
    h.save(tmp_path / "head.safetensors", tmp_path / "labels.json")
    _same(Head.load(tmp_path / "head.safetensors", tmp_path / "labels.json"), h)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp files left


def test_load_names_the_bad_file(tmp_path: Path) -> None:
    h = _head()
    w, lab = tmp_path / "head.safetensors", tmp_path / "labels.json"
    h.save(w, lab)
    lab.write_bytes(orjson.dumps({"version": 1, "labels": ["a", "b"]}))  # 2 labels, 3 columns
    with pytest.raises(ModelError, match="do not fit together"):
        Head.load(w, lab)
    lab.write_text("{")
    with pytest.raises(ModelError, match=r"labels\.json is not valid JSON"):
        Head.load(w, lab)
    w.write_bytes(b"garbage")
    with pytest.raises(ModelError, match="not valid safetensors"):
        Head.load(w, lab)
    with pytest.raises(ModelError, match="cannot read head weights"):
        Head.load(tmp_path / "missing.safetensors", lab)


def test_control_round_trip() -> None:
    h = _head()
    raw = h.to_control()
    doc = orjson.loads(raw)
    assert doc["schema"] == CONTROL_SCHEMA and doc["embed_dim"] == 4
    w = np.frombuffer(base64.b64decode(doc["weight"]), "<f4").reshape(4, 3)
    np.testing.assert_array_equal(w, h.weight)
    _same(Head.from_control(raw), h)


def _doc() -> dict[str, object]:
    return dict(orjson.loads(_head().to_control()))


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"schema": "harclip.head/0"}, "schema"),
        ({"labels": []}, "at least one label"),
        ({"labels": ["a", "a", "b"]}, "unique"),
        ({"labels": ["a", 1, "b"]}, "labels must be"),
        ({"version": "2"}, "version"),
        ({"version": -1}, "version"),
        ({"kind": "other"}, "kind"),
        ({"embed_dim": 0}, "embed_dim"),
        ({"embed_dim": 5}, "floats, expected 15"),
        ({"weight": "not base64!"}, "base64"),
        ({"weight": base64.b64encode(b"\0" * 8).decode()}, "weight holds 2 floats"),
        ({"bias": None}, "bias"),
        ({"bias": base64.b64encode(np.full(3, np.nan, "<f4").tobytes()).decode()}, "finite"),
        ({"logit_scale": 0}, "logit_scale"),
        ({"logit_scale": "100"}, "logit_scale"),
        ({"prompts": {"class0": "one"}}, "prompts"),
    ],
)
def test_control_rejects_malformed(change: dict[str, object], match: str) -> None:
    with pytest.raises(MessageError, match=match):
        Head.from_control(orjson.dumps(_doc() | change))


@pytest.mark.parametrize("raw", [b"", b"not json", b"[1, 2]", b'"head"', b"{}"])
def test_control_rejects_non_messages(raw: bytes) -> None:
    with pytest.raises(MessageError):
        Head.from_control(raw)
