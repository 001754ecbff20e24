"""ONNX Runtime engine over `encoder.onnx` (fp32) or `encoder.int8.onnx` (dynamic INT8).

Execution providers come from settings in order of preference (TensorRT, CUDA, CPU); providers this
onnxruntime build lacks are skipped with a warning, and none left is `EngineUnavailable`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort

from harclip.engines._checks import check_embeddings, check_images, empty
from harclip.errors import EngineUnavailable, ModelError

log = logging.getLogger(__name__)

INPUT = "pixels"
OUTPUT = "embedding"
_PROVIDER_LABELS = {
    "CPUExecutionProvider": "cpu",
    "CUDAExecutionProvider": "cuda",
    "TensorrtExecutionProvider": "tensorrt-ep",
}
_GPU_HINT = "install onnxruntime-gpu (pip install 'harclip[gpu]') on a machine with CUDA"


class OnnxEngine:
    """`embed(uint8 [N, S, S, 3]) -> float32 [N, D]` through an ONNX Runtime session."""

    def __init__(
        self,
        path: Path,
        *,
        name: str = "onnx",
        image_size: int,
        embed_dim: int,
        providers: Sequence[str] = ("CPUExecutionProvider",),
        intra_op_threads: int = 0,
        spinning: bool = True,
    ) -> None:
        self.name = name
        self.image_size = image_size
        self.embed_dim = embed_dim
        self.path = path
        chosen = select_providers(providers)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.intra_op_num_threads = intra_op_threads  # 0: one per physical core
        if not spinning:  # idle intra-op threads sleep instead of spinning for more work
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3  # errors only: ORT warns about unused initializers
        try:
            self._session: ort.InferenceSession | None = ort.InferenceSession(
                str(path), sess_options=options, providers=chosen
            )
        except Exception as e:  # ORT raises its own untyped errors (Fail, InvalidGraph, ...)
            raise ModelError(f"{name}: cannot load {path}: {e}") from None
        self.providers: list[str] = self._session.get_providers()
        _check_active(chosen, self.providers, name)
        short = _PROVIDER_LABELS.get(self.providers[0], self.providers[0])
        self.label = name if short == "cpu" else f"{name}/{short}"
        _check_graph(self._session, name, image_size, embed_dim)

    def embed(self, images: np.ndarray) -> np.ndarray:
        """uint8 [N, S, S, 3] RGB → float32 [N, D], L2-normalised."""
        images = check_images(images, self.image_size, self.name)
        if len(images) == 0:
            return empty(self.embed_dim)
        if self._session is None:
            raise ModelError(f"{self.name}: engine is closed")
        (out,) = self._session.run([OUTPUT], {INPUT: images})
        return check_embeddings(np.asarray(out), len(images), self.embed_dim, self.name)

    def close(self) -> None:
        self._session = None


def select_providers(preferred: Sequence[str]) -> list[str]:
    """The preferred execution providers this onnxruntime build has, in order."""
    available = ort.get_available_providers()
    chosen = [p for p in preferred if p in available]
    missing = [p for p in preferred if p not in available]
    if not chosen:
        raise EngineUnavailable(
            f"none of the ONNX Runtime providers {list(preferred)} is available here "
            f"(available: {available}); {_GPU_HINT}, or set HARCLIP_MODEL__PROVIDERS="
            "'[\"CPUExecutionProvider\"]'"
        )
    if missing:
        log.warning("ONNX Runtime providers %s unavailable here, using %s", missing, chosen)
    return chosen


def _check_active(chosen: list[str], active: list[str], name: str) -> None:
    # onnxruntime-gpu falls back to CPU silently when CUDA libraries fail to load.
    if active and active[0] != chosen[0]:
        if "CPUExecutionProvider" not in chosen:
            raise EngineUnavailable(
                f"{name}: {chosen[0]} failed to start (active: {active}); {_GPU_HINT}"
            )
        log.warning("%s: %s failed to start, running on %s", name, chosen[0], active)


def _check_graph(session: ort.InferenceSession, name: str, size: int, dim: int) -> None:
    inputs = {i.name: i for i in session.get_inputs()}
    outputs = {o.name: o for o in session.get_outputs()}
    if INPUT not in inputs or OUTPUT not in outputs:
        raise ModelError(
            f"{name}: graph must have input {INPUT!r} and output {OUTPUT!r}, "
            f"has {list(inputs)} -> {list(outputs)}"
        )
    pixels = inputs[INPUT]
    if pixels.type != "tensor(uint8)":
        raise ModelError(f"{name}: input {INPUT!r} must be uint8, is {pixels.type}")
    shape = list(pixels.shape)
    if len(shape) != 4 or shape[1:] != [size, size, 3]:
        raise ModelError(f"{name}: input {INPUT!r} must be [N, {size}, {size}, 3], is {shape}")
    out_shape = list(outputs[OUTPUT].shape)
    if len(out_shape) != 2 or (isinstance(out_shape[1], int) and out_shape[1] != dim):
        raise ModelError(f"{name}: output {OUTPUT!r} must be [N, {dim}], is {out_shape}")
