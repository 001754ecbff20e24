"""Export of the tiny CLIP: every engine agrees with PyTorch, the graphs keep their contracts,
the zero-shot head equals CLIP's own image-text similarity."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import orjson
import pytest
import torch

from harclip.clip.export import ExportOptions, export_bundle
from harclip.clip.load import LoadedClip, load_clip
from harclip.clip.validate import generated_images, torch_embeddings
from harclip.clip.wrappers import TextEncoderModule, tokenize
from harclip.config import ModelSettings, load_settings
from harclip.engines import create_engine
from harclip.errors import EngineUnavailable, ModelError
from harclip.model.bundle import Bundle


@pytest.fixture(scope="module")
def clip(tiny_model_dir: Path) -> LoadedClip:
    return load_clip(tiny_model_dir)


@pytest.fixture(scope="module")
def images(sample_photos: list[Path]) -> np.ndarray:
    """12 real photos (preprocessed) and 4 generated images, uint8 [16, 224, 224, 3]."""
    from harclip.model.preprocess import preprocess_batch

    photos, errors = preprocess_batch(
        [p.read_bytes() for p in sample_photos[::50]], 224, max_pixels=40_000_000
    )
    assert errors == [None] * len(photos)
    return np.concatenate([photos, generated_images(4, 224)])


def _embed(bundle: Path, engine: str, images: np.ndarray) -> np.ndarray:
    e = create_engine(Bundle.load(bundle), engine, ModelSettings(device="cpu"))  # type: ignore[arg-type]
    try:
        return e.embed(images)
    finally:
        e.close()


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
@pytest.mark.parametrize("engine", ["onnx", "torchscript", "torch"])
def test_fp32_engines_match_pytorch(
    engine: str, tiny_bundle: Path, clip: LoadedClip, images: np.ndarray
) -> None:
    ref = torch_embeddings(clip, images)
    emb = _embed(tiny_bundle, engine, images)
    assert emb.shape == ref.shape and emb.dtype == np.float32
    assert np.abs(emb - ref).max() <= 1e-4
    head = Bundle.load(tiny_bundle).load_head()
    assert (head.logits(emb).argmax(1) == head.logits(ref).argmax(1)).all()


def test_int8_engine_is_close_to_pytorch(
    tiny_bundle: Path, clip: LoadedClip, images: np.ndarray
) -> None:
    ref = torch_embeddings(clip, images)
    emb = _embed(tiny_bundle, "onnx-int8", images)
    assert (emb * ref).sum(axis=1).min() >= 0.99


@pytest.mark.parametrize("name", ["encoder.onnx", "encoder.int8.onnx"])
def test_image_graph_contract(name: str, tiny_bundle: Path, clip: LoadedClip) -> None:
    model = onnx.load(str(tiny_bundle / name))
    (inp,) = model.graph.input
    assert inp.name == "pixels"
    assert inp.type.tensor_type.elem_type == onnx.TensorProto.UINT8
    assert [o.name for o in model.graph.output] == ["embedding"]
    session = ort.InferenceSession(str(tiny_bundle / name), providers=["CPUExecutionProvider"])
    for n in (1, 5):  # the batch axis is dynamic
        (out,) = session.run(None, {"pixels": generated_images(n, 224)})
        assert out.shape == (n, clip.embed_dim)
        np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)


def test_text_encoder_onnx_matches_pytorch(tiny_bundle: Path, clip: LoadedClip) -> None:
    texts = ["a photo of a person riding a bike.", "Zebra crossing, 42 times!", "word " * 120, ""]
    enc = tokenize(clip.tokenizer, texts, clip.context_length)
    with torch.inference_mode():
        ref = TextEncoderModule(clip.model)(**enc).numpy()
        hf = clip.model.get_text_features(**enc).pooler_output
        hf = torch.nn.functional.normalize(hf, dim=-1).numpy()
    np.testing.assert_allclose(ref, hf, atol=1e-6)
    text = Bundle.load(tiny_bundle).text_encoder()
    ids, mask = text.tokenize(texts)
    np.testing.assert_array_equal(ids, enc["input_ids"].numpy())
    np.testing.assert_array_equal(mask, enc["attention_mask"].numpy())
    np.testing.assert_allclose(text.encode(texts), ref, atol=1e-5)


def _pixel_values(clip: LoadedClip, images: np.ndarray) -> torch.Tensor:
    """CLIPImageProcessor's rescale + normalise of already resized and cropped images."""
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
    return (x - torch.tensor(clip.mean).view(1, 3, 1, 1)) / torch.tensor(clip.std).view(1, 3, 1, 1)


def test_single_prompt_head_equals_clip_logits_per_image(
    tiny_bundle: Path, clip: LoadedClip, images: np.ndarray
) -> None:
    from harclip.model.text import build_head

    labels = {"running": ["a photo of a person running."], "eating": ["someone eating."],
              "sleeping": ["a person sleeping in bed."]}  # fmt: skip
    head = build_head(
        Bundle.load(tiny_bundle).text_encoder(), labels, logit_scale=clip.logit_scale, version=1
    )
    enc = tokenize(clip.tokenizer, [p[0] for p in labels.values()], clip.context_length)
    with torch.inference_mode():
        out = clip.model(**enc, pixel_values=_pixel_values(clip, images))
    expected = out.logits_per_image.numpy()
    got = head.logits(_embed(tiny_bundle, "onnx", images))
    np.testing.assert_allclose(got, expected, atol=1e-4)
    assert (got.argmax(1) == expected.argmax(1)).all()


def test_ensembled_head_equals_direct_clip_computation(
    tiny_bundle: Path, clip: LoadedClip, images: np.ndarray
) -> None:
    head = Bundle.load(tiny_bundle).load_head()  # the default 15 classes x 7 prompts
    cols = []
    with torch.inference_mode():
        for label in head.labels:
            enc = tokenize(clip.tokenizer, head.prompts[label], clip.context_length)
            t = torch.nn.functional.normalize(clip.model.get_text_features(**enc).pooler_output)
            cols.append(torch.nn.functional.normalize(t.mean(0), dim=0))
        img = clip.model.get_image_features(pixel_values=_pixel_values(clip, images)).pooler_output
        img = torch.nn.functional.normalize(img)
        expected = (clip.model.logit_scale.exp() * img @ torch.stack(cols, 1)).numpy()
    got = head.logits(_embed(tiny_bundle, "onnx", images))
    np.testing.assert_allclose(got, expected, atol=1e-4)
    assert (np.argsort(-got, 1)[:, :3] == np.argsort(-expected, 1)[:, :3]).all()


def test_export_command_validates_and_records_figures(tiny_model_dir: Path, tmp_path: Path) -> None:
    from harclip.cli import main

    labels = tmp_path / "labels.json"
    labels.write_bytes(orjson.dumps({"waving": ["a person waving."], "jumping": []}))
    out = tmp_path / "b"
    args = ["export", "--model", str(tiny_model_dir), "--output", str(out),
            "--format", "onnx", "int8", "--labels", str(labels), "--validate"]  # fmt: skip
    assert main(args) == 0
    bundle = Bundle.load(out)
    assert bundle.engine_names == ("onnx", "onnx-int8")
    head = bundle.load_head()
    assert head.labels == ("waving", "jumping") and head.version > 0
    assert len(head.prompts["jumping"]) > 1  # templates filled in
    report = bundle.manifest.validation
    assert report["engines"]["onnx"]["top1_agreement"] == 1.0
    assert report["engines"]["onnx"]["max_abs_diff"] <= 1e-4
    assert report["engines"]["onnx-int8"]["min_cosine"] >= 0.99
    # exporting again into the same bundle makes a newer head version
    assert main(args) == 0
    assert Bundle.load(out).load_head().version > head.version


def test_export_refuses_a_folder_holding_something_else(clip: LoadedClip, tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(ModelError, match="non-empty folder"):
        export_bundle(clip, tmp_path, ExportOptions())


def test_tensorrt_without_tensorrt_is_a_clear_error(clip: LoadedClip, tmp_path: Path) -> None:
    if shutil.which("trtexec") or _has_tensorrt():
        pytest.skip("TensorRT is installed here")
    with pytest.raises(EngineUnavailable, match=r"harclip\[gpu\]"):
        export_bundle(clip, tmp_path / "b", ExportOptions(formats=("onnx", "tensorrt")))
    assert not (tmp_path / "b").exists()  # failed before doing any work


def _has_tensorrt() -> bool:
    import importlib.util

    return importlib.util.find_spec("tensorrt") is not None


def test_settings_without_sample_data_validate_on_generated_images(
    tiny_bundle: Path, clip: LoadedClip
) -> None:
    from harclip.clip.validate import validate_bundle

    report = validate_bundle(Bundle.load(tiny_bundle), clip, load_settings(sample_data=None))
    assert report["source"] == "generated images"
    assert report["engines"]["onnx"]["top1_agreement"] == 1.0
