"""ONNX Runtime engine: interface behaviour on small hand-built graphs that follow the encoder
contract (no torch needed): batch sizes, input checks, output-row checks, providers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from harclip.engines.onnx import OnnxEngine, select_providers
from harclip.errors import EngineUnavailable, ModelError

S, D = 8, 4


def _graph(path: Path, *, drop_row: bool = False, input_type: int = TensorProto.UINT8) -> Path:
    """pixels uint8 [N,S,S,3] → mean colour [N,3] → linear [N,D] → L2 normalise (→ drop row 0)."""
    w = numpy_helper.from_array(np.arange(3 * D, dtype=np.float32).reshape(3, D) - 5, "w")
    nodes = [
        helper.make_node("Cast", ["pixels"], ["x"], to=TensorProto.FLOAT),
        helper.make_node("ReduceMean", ["x", "axes"], ["m"], keepdims=0),
        helper.make_node("MatMul", ["m", "w"], ["y"]),
        helper.make_node("LpNormalization", ["y"], ["z" if drop_row else "embedding"], axis=1),
    ]
    inits = [w, numpy_helper.from_array(np.array([1, 2], np.int64), "axes")]
    if drop_row:
        for name, v in (("s", 1), ("e", 1 << 30), ("a", 0)):
            inits.append(numpy_helper.from_array(np.array([v], np.int64), name))
        nodes.append(helper.make_node("Slice", ["z", "s", "e", "a"], ["embedding"]))
    graph = helper.make_graph(
        nodes,
        "enc",
        [helper.make_tensor_value_info("pixels", input_type, ["N", S, S, 3])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["N", D])],
        inits,
    )
    # IR 10: loadable by every onnxruntime >= 1.20, whatever onnx version wrote it
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=10)
    onnx.save(model, path)
    return path


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> OnnxEngine:
    return OnnxEngine(_graph(tmp_path_factory.mktemp("g") / "e.onnx"), image_size=S, embed_dim=D)


def _images(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, S, S, 3), dtype=np.uint8)


@pytest.mark.parametrize("n", [1, 7, 64])
def test_embed_batch_sizes_are_normalised_and_independent_of_batching(
    engine: OnnxEngine, n: int
) -> None:
    images = _images(n)
    out = engine.embed(images)
    assert out.shape == (n, D) and out.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(engine.embed(images[-1:]), out[-1:], atol=1e-6)


def test_empty_batch(engine: OnnxEngine) -> None:
    assert engine.embed(np.zeros((0, S, S, 3), np.uint8)).shape == (0, D)


@pytest.mark.parametrize(
    ("images", "match"),
    [
        (np.zeros((2, S, S, 3), np.float32), "expected uint8 pixels"),
        (np.zeros((2, S + 1, S, 3), np.uint8), r"expected images of shape \[N, 8, 8, 3\]"),
        (np.zeros((S, S, 3), np.uint8), "got \\[8, 8, 3\\]"),
        ([[1, 2]], "expected a numpy array"),
    ],
)
def test_bad_input_is_a_model_error(engine: OnnxEngine, images: np.ndarray, match: str) -> None:
    with pytest.raises(ModelError, match=match):
        engine.embed(images)


def test_non_contiguous_input_is_accepted(engine: OnnxEngine) -> None:
    images = _images(6)
    np.testing.assert_allclose(engine.embed(images[::2]), engine.embed(images[::2].copy()))


def test_wrong_number_of_rows_is_a_model_error(tmp_path: Path) -> None:
    eng = OnnxEngine(_graph(tmp_path / "d.onnx", drop_row=True), image_size=S, embed_dim=D)
    with pytest.raises(ModelError, match="returned 2 embeddings for 3 images"):
        eng.embed(_images(3))


def test_graph_contract_is_checked_at_load(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="must be uint8"):
        OnnxEngine(_graph(tmp_path / "f.onnx", input_type=TensorProto.FLOAT), image_size=S,
                   embed_dim=D)  # fmt: skip
    with pytest.raises(ModelError, match=r"must be \[N, 16, 16, 3\]"):
        OnnxEngine(_graph(tmp_path / "g.onnx"), image_size=16, embed_dim=D)
    (tmp_path / "bad.onnx").write_bytes(b"not a model")
    with pytest.raises(ModelError, match="cannot load"):
        OnnxEngine(tmp_path / "bad.onnx", image_size=S, embed_dim=D)


def test_closed_engine_refuses(tmp_path: Path) -> None:
    eng = OnnxEngine(_graph(tmp_path / "c.onnx"), image_size=S, embed_dim=D)
    eng.close()
    with pytest.raises(ModelError, match="closed"):
        eng.embed(_images(1))


def test_providers_in_order_of_preference_and_missing_gpu_is_unavailable() -> None:
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime has CUDA; the unavailable path needs a CPU-only build")
    assert select_providers(["CUDAExecutionProvider", "CPUExecutionProvider"]) == [
        "CPUExecutionProvider"
    ]
    for gpu in ("CUDAExecutionProvider", "TensorrtExecutionProvider"):
        with pytest.raises(EngineUnavailable, match="install onnxruntime-gpu"):
            select_providers([gpu])
