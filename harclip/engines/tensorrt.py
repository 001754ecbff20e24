"""Native TensorRT engine over `encoder.<precision>.plan` (built from encoder.onnx by export).

Imports `tensorrt` and CUDA's runtime bindings (`cuda-python`) only when created; where either is
missing, or no GPU is visible, creating it raises `EngineUnavailable` saying what to install.
Buffers are allocated once for the plan's largest batch; bigger batches run in chunks.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from harclip.engines._checks import check_embeddings, check_images, empty
from harclip.errors import EngineUnavailable, ModelError

INPUT = "pixels"
OUTPUT = "embedding"
_INSTALL = "pip install 'harclip[gpu]' (tensorrt, cuda-python) on a machine with an NVIDIA GPU"


def _import_runtime() -> tuple[ModuleType, ModuleType]:
    try:
        import tensorrt as trt
    except ImportError:
        raise EngineUnavailable(
            f"engine 'tensorrt' needs TensorRT, not installed here: {_INSTALL}"
        ) from None
    try:
        from cuda.bindings import runtime as cudart
    except ImportError:
        try:
            from cuda import cudart  # cuda-python < 12.6
        except ImportError:
            raise EngineUnavailable(
                f"engine 'tensorrt' needs CUDA's Python bindings, not installed here: {_INSTALL}"
            ) from None
    return trt, cudart


def require_runtime() -> None:
    """`EngineUnavailable` unless TensorRT and CUDA's Python bindings import here."""
    _import_runtime()


class TensorRTEngine:
    """`embed(uint8 [N, S, S, 3]) -> float32 [N, D]` through a deserialised TensorRT plan."""

    name = "tensorrt"

    def __init__(self, path: Path, *, image_size: int, embed_dim: int, precision: str) -> None:
        trt, self._cudart = _import_runtime()
        self.image_size = image_size
        self.embed_dim = embed_dim
        self.precision = precision
        self.label = f"tensorrt/{precision}"
        try:
            self._call("cudaSetDevice", 0)
        except ModelError as e:
            raise EngineUnavailable(f"engine 'tensorrt' found no usable CUDA device: {e}") from None
        self._logger = trt.Logger(trt.Logger.WARNING)
        runtime = trt.Runtime(self._logger)
        engine = runtime.deserialize_cuda_engine(path.read_bytes())
        if engine is None:
            raise ModelError(
                f"tensorrt: cannot deserialise {path} (built with another TensorRT version or GPU?)"
            )
        self._engine: Any = engine
        if engine.get_tensor_dtype(OUTPUT) != trt.float32:
            raise ModelError(f"tensorrt: {path} must output float32 {OUTPUT!r}")
        self._context: Any = engine.create_execution_context()
        self.max_batch = int(engine.get_tensor_profile_shape(INPUT, 0)[2][0])
        self._in_bytes = self.max_batch * image_size * image_size * 3
        self._out_bytes = self.max_batch * embed_dim * 4
        self._d_in = self._call("cudaMalloc", self._in_bytes)
        self._d_out = self._call("cudaMalloc", self._out_bytes)
        self._stream = self._call("cudaStreamCreate")
        self._context.set_tensor_address(INPUT, int(self._d_in))
        self._context.set_tensor_address(OUTPUT, int(self._d_out))
        self._closed = False

    def _call(self, fn: str, *args: Any) -> Any:
        result = getattr(self._cudart, fn)(*args)
        err, *values = result if isinstance(result, tuple) else (result,)
        if int(err) != 0:
            raise ModelError(f"tensorrt: {fn} failed: {err}")
        return values[0] if values else None

    def embed(self, images: np.ndarray) -> np.ndarray:
        """uint8 [N, S, S, 3] RGB → float32 [N, D], L2-normalised (chunks of `max_batch`)."""
        images = check_images(images, self.image_size, self.name)
        if len(images) == 0:
            return empty(self.embed_dim)
        if self._closed:
            raise ModelError("tensorrt: engine is closed")
        out = np.empty((len(images), self.embed_dim), np.float32)
        for start in range(0, len(images), self.max_batch):
            self._run(images[start : start + self.max_batch], out[start : start + self.max_batch])
        return check_embeddings(out, len(images), self.embed_dim, self.name)

    def _run(self, chunk: np.ndarray, out: np.ndarray) -> None:
        h2d = self._cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
        d2h = self._cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        self._context.set_input_shape(INPUT, chunk.shape)
        self._call(
            "cudaMemcpyAsync", self._d_in, chunk.ctypes.data, chunk.nbytes, h2d, self._stream
        )
        if not self._context.execute_async_v3(int(self._stream)):
            raise ModelError("tensorrt: execution failed")
        self._call("cudaMemcpyAsync", out.ctypes.data, self._d_out, out.nbytes, d2h, self._stream)
        self._call("cudaStreamSynchronize", self._stream)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._call("cudaFree", self._d_in)
        self._call("cudaFree", self._d_out)
        self._call("cudaStreamDestroy", self._stream)
        self._context = None
        self._engine = None
