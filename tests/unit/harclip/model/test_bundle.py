"""Bundle.load: a broken bundle fails with a message naming the file or field."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import orjson
import pytest

from harclip.errors import ModelError
from harclip.model.bundle import Bundle
from harclip.model.head import Head


@pytest.fixture
def bundle_copy(tiny_bundle: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(tiny_bundle, tmp_path / "b"))


def _edit_manifest(path: Path, edit: Callable[[dict[str, object]], None]) -> None:
    doc = orjson.loads((path / "manifest.json").read_bytes())
    edit(doc)
    (path / "manifest.json").write_bytes(orjson.dumps(doc))


def test_load_reads_the_manifest(tiny_bundle: Path) -> None:
    b = Bundle.load(tiny_bundle)
    m = b.manifest
    assert (m.image_size, m.embed_dim, m.context_length) == (224, 32, 77)
    assert b.engine_names == ("onnx", "onnx-int8", "torchscript", "torch")
    assert b.engine_file("onnx") == tiny_bundle / "encoder.onnx"
    assert b.engine_file("torch").is_dir()
    assert b.load_head().labels[0] == "calling"


def test_not_a_folder_or_no_manifest(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="is not a folder"):
        Bundle.load(tmp_path / "nope")
    with pytest.raises(ModelError, match=r"manifest\.json is missing"):
        Bundle.load(tmp_path)


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda d: d.pop("embed_dim"), "missing field 'embed_dim'"),
        (lambda d: d.update(image_size=0), "'image_size' must be an integer >= 1"),
        (lambda d: d.update(mean=[0.5, 0.5]), "'mean' must be three numbers"),
        (lambda d: d.update(std=[0.5, 0.0, 0.5]), "'std' must be three positive numbers"),
        (lambda d: d.update(format="other/9"), "format must be 'harclip.bundle/1'"),
        (lambda d: d.update(engines={}), "'engines' must be a non-empty object"),
        (lambda d: d.update(engines={"onnx": 3}), "engines.onnx must name a file"),
        (
            lambda d: d.update(engines={"onnx": "gone.onnx"}),
            "engine 'onnx' file gone.onnx is missing",
        ),
        (lambda d: d.update(text_encoder="t.onnx"), "text encoder file t.onnx is missing"),
        (lambda d: d.update(random_weights="yes"), "'random_weights' must be true or false"),
    ],
)
def test_invalid_manifest_names_the_field(
    bundle_copy: Path, edit: Callable[[dict[str, object]], None], match: str
) -> None:
    _edit_manifest(bundle_copy, edit)
    with pytest.raises(ModelError, match=match):
        Bundle.load(bundle_copy)


def test_random_weights_come_from_init_model_and_default_to_false(bundle_copy: Path) -> None:
    """The tiny bundle is exported from `init-model`'s random CLIP (its marker file): the
    manifest says so; a manifest written before the field existed reads as not random."""
    assert Bundle.load(bundle_copy).manifest.random_weights is True
    _edit_manifest(bundle_copy, lambda d: d.pop("random_weights"))
    assert Bundle.load(bundle_copy).manifest.random_weights is False


def test_manifest_not_json(bundle_copy: Path) -> None:
    (bundle_copy / "manifest.json").write_text("{nope")
    with pytest.raises(ModelError, match="not valid JSON"):
        Bundle.load(bundle_copy)


def test_missing_files_are_named(bundle_copy: Path) -> None:
    (bundle_copy / "head.safetensors").unlink()
    with pytest.raises(ModelError, match=r"head file head\.safetensors is missing"):
        Bundle.load(bundle_copy)
    shutil.copy(bundle_copy / "encoder.onnx", bundle_copy / "head.safetensors")
    (bundle_copy / "tokenizer" / "tokenizer.json").unlink()
    with pytest.raises(ModelError, match=r"tokenizer file tokenizer/tokenizer\.json is missing"):
        Bundle.load(bundle_copy)


def test_engine_file_of_a_missing_engine_says_how_to_export(tiny_bundle: Path) -> None:
    b = Bundle.load(tiny_bundle)
    with pytest.raises(ModelError, match=r"no 'tensorrt' engine.*--format tensorrt"):
        b.engine_file("tensorrt", "fp16")


def test_engine_file_per_precision(bundle_copy: Path) -> None:
    (bundle_copy / "encoder.fp16.plan").write_bytes(b"plan")
    _edit_manifest(
        bundle_copy, lambda d: d["engines"].update(tensorrt={"fp16": "encoder.fp16.plan"})
    )  # type: ignore[attr-defined]
    b = Bundle.load(bundle_copy)
    assert b.engine_file("tensorrt", "fp16") == bundle_copy / "encoder.fp16.plan"
    assert b.engine_file("tensorrt") == bundle_copy / "encoder.fp16.plan"
    with pytest.raises(ModelError, match="no 'tensorrt' engine for precision 'int8'"):
        b.engine_file("tensorrt", "int8")


def test_save_head_replaces_the_head(bundle_copy: Path) -> None:
    b = Bundle.load(bundle_copy)
    old = b.load_head()
    new = Head(
        labels=("a", "b"),
        weight=np.ones((32, 2), np.float32),
        bias=np.zeros(2, np.float32),
        logit_scale=50.0,
        version=old.version + 1,
    )
    b.save_head(new)
    got = Bundle.load(bundle_copy).load_head()
    assert (got.labels, got.version, got.logit_scale) == (("a", "b"), old.version + 1, 50.0)
    assert sorted(p.name for p in bundle_copy.iterdir() if p.name.startswith(".")) == []


def test_save_head_refuses_another_embedding_size(bundle_copy: Path) -> None:
    head = Head(labels=("a",), weight=np.ones((8, 1), np.float32), bias=np.zeros(1, np.float32),
                logit_scale=1.0, version=1)  # fmt: skip
    with pytest.raises(ModelError, match="8-d embeddings"):
        Bundle.load(bundle_copy).save_head(head)
