"""Every CPU engine of the tiny bundle against the PyTorch reference, on the real photos; and
the GPU engines' clear refusal where CUDA / TensorRT are missing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from harclip.config import EngineName, ModelSettings
from harclip.engines import Engine, create_engine
from harclip.errors import EngineUnavailable, ModelError
from harclip.model.bundle import Bundle
from harclip.model.preprocess import preprocess_batch


@pytest.fixture(scope="module")
def bundle(tiny_bundle: Path) -> Bundle:
    return Bundle.load(tiny_bundle)


@pytest.fixture(scope="module")
def images(bundle: Bundle, sample_photos: list[Path]) -> np.ndarray:
    datas = [p.read_bytes() for p in sample_photos[::15]]  # 40 photos, every class
    pixels, errors = preprocess_batch(datas, bundle.manifest.image_size, max_pixels=10**8)
    assert errors == [None] * len(datas)
    return pixels


@pytest.fixture(scope="module")
def reference(bundle: Bundle, images: np.ndarray) -> np.ndarray:
    engine = create_engine(bundle, "torch", ModelSettings(device="cpu"))
    try:
        return engine.embed(images)
    finally:
        engine.close()


def _run(bundle: Bundle, name: EngineName, images: np.ndarray, **settings: object) -> np.ndarray:
    # device "auto" would pick a GPU where there is one; the CPU reference wants the CPU here
    options = {"device": "cpu"} | settings
    engine: Engine = create_engine(bundle, name, ModelSettings(**options))  # type: ignore[arg-type]
    try:
        assert engine.name == name and engine.embed_dim == bundle.manifest.embed_dim
        return engine.embed(images)
    finally:
        engine.close()


@pytest.mark.parametrize("name", ["onnx", "torchscript"])
def test_fp32_engines_match_torch(
    bundle: Bundle, images: np.ndarray, reference: np.ndarray, name: EngineName
) -> None:
    out = _run(bundle, name, images)
    assert out.dtype == np.float32 and out.shape == reference.shape
    assert float(np.abs(out - reference).max()) <= 1e-4
    head = bundle.load_head()
    np.testing.assert_array_equal(head.logits(out).argmax(1), head.logits(reference).argmax(1))


def test_torchscript_matches_onnx(bundle: Bundle, images: np.ndarray) -> None:
    diff = np.abs(_run(bundle, "torchscript", images) - _run(bundle, "onnx", images))
    assert float(diff.max()) <= 1e-4


def test_int8_cosine(bundle: Bundle, images: np.ndarray, reference: np.ndarray) -> None:
    out = _run(bundle, "onnx-int8", images, intra_op_threads=1)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-4)
    assert float(np.sum(out * reference, axis=1).min()) >= 0.99


def test_torch_bf16_is_close_to_fp32(
    bundle: Bundle, images: np.ndarray, reference: np.ndarray
) -> None:
    out = _run(bundle, "torch", images[:8], torch_dtype="bf16")
    assert out.dtype == np.float32
    assert float(np.sum(out * reference[:8], axis=1).min()) >= 0.98


@pytest.mark.parametrize("name", ["onnx", "onnx-int8", "torchscript", "torch"])
@pytest.mark.parametrize("n", [1, 5, 33])
def test_batch_sizes_and_rows_independent(
    bundle: Bundle, images: np.ndarray, name: EngineName, n: int
) -> None:
    batch = np.concatenate([images] * 2)[:n]
    out = _run(bundle, name, batch)
    assert out.shape == (n, bundle.manifest.embed_dim)
    single = _run(bundle, name, batch[-1:])
    assert float(np.abs(out[-1] - single[0]).max()) <= (2e-2 if name == "onnx-int8" else 1e-4)


@pytest.mark.parametrize("name", ["onnx", "torchscript", "torch"])
def test_wrong_shape_and_dtype_are_model_errors(
    bundle: Bundle, images: np.ndarray, name: EngineName
) -> None:
    engine = create_engine(bundle, name, ModelSettings())
    try:
        with pytest.raises(ModelError, match="expected uint8"):
            engine.embed(images[:2].astype(np.float32))
        with pytest.raises(ModelError, match="expected images of shape"):
            engine.embed(images[:2, :-1])
        assert engine.embed(images[:0]).shape == (0, bundle.manifest.embed_dim)
    finally:
        engine.close()


def _has_cuda() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def test_tensorrt_unavailable_says_what_to_install(bundle: Bundle) -> None:
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        with pytest.raises(EngineUnavailable, match=r"pip install 'harclip\[gpu\]'"):
            create_engine(bundle, "tensorrt", ModelSettings())
    else:
        if not _has_cuda():
            pytest.skip("tensorrt is installed but no CUDA device is visible")
        with pytest.raises(ModelError, match="no 'tensorrt' engine"):  # tiny bundle has no plan
            create_engine(bundle, "tensorrt", ModelSettings())


def test_onnx_cuda_provider_unavailable(bundle: Bundle) -> None:
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("onnxruntime-gpu is installed here")
    with pytest.raises(EngineUnavailable, match="onnxruntime-gpu"):
        create_engine(bundle, "onnx", ModelSettings(providers=("CUDAExecutionProvider",)))


def test_torch_on_cuda(bundle: Bundle, images: np.ndarray, reference: np.ndarray) -> None:
    if not _has_cuda():
        with pytest.raises(EngineUnavailable, match="no CUDA device"):
            create_engine(bundle, "torch", ModelSettings(device="cuda"))
        return
    for dtype, min_cos in (("fp32", 0.9999), ("fp16", 0.99), ("bf16", 0.98)):
        out = _run(bundle, "torch", images, device="cuda", torch_dtype=dtype)
        assert float(np.sum(out * reference, axis=1).min()) >= min_cos
    out = _run(bundle, "torchscript", images, device="cuda")
    assert float(np.abs(out - reference).max()) <= 1e-3


def test_missing_engine_file_names_the_export_command(tmp_path: Path, bundle: Bundle) -> None:
    import shutil

    copy = tmp_path / "b"
    shutil.copytree(bundle.path, copy)
    small = Bundle.load(copy)
    small.save_manifest(
        type(small.manifest)(**{**small.manifest.__dict__, "engines": {"onnx": "encoder.onnx"}})
    )
    with pytest.raises(ModelError, match="--format torchscript"):
        create_engine(small, "torchscript", ModelSettings())
