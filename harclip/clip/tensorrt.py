"""Build a native TensorRT engine (`encoder.<precision>.plan`) from `encoder.onnx`.

TensorRT is imported only here and only when asked for; where it is missing the build fails with
`EngineUnavailable` naming the extra to install.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from harclip.errors import EngineUnavailable, ModelError

_WORKSPACE_BYTES = 2 << 30


def import_tensorrt() -> ModuleType:
    """`tensorrt`, or `EngineUnavailable` saying how to get it."""
    try:
        trt = importlib.import_module("tensorrt")
    except ImportError:
        raise EngineUnavailable(
            "TensorRT is not installed here: pip install 'harclip[gpu]' on a machine with an "
            "NVIDIA GPU (or export --format onnx int8 torchscript for CPU)"
        ) from None
    return trt


def build_plan(
    onnx_path: Path, plan_path: Path, image_size: int, *, precision: str, max_batch: int
) -> None:
    """Parse `onnx_path`, build for batch 1..max_batch (optimised for max_batch) at `precision`
    (fp32 | fp16 | int8, INT8 calibrated on generated images), write the serialised plan."""
    trt = import_tensorrt()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_path.read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ModelError(f"TensorRT cannot parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, _WORKSPACE_BYTES)
    profile = builder.create_optimization_profile()
    s = image_size
    profile.set_shape("pixels", (1, s, s, 3), (max_batch, s, s, 3), (max_batch, s, s, 3))
    config.add_optimization_profile(profile)
    if precision == "fp16":
        config.set_flag(trt.BuilderFlag.FP16)
    elif precision == "int8":
        config.set_flag(trt.BuilderFlag.INT8)
        config.set_flag(trt.BuilderFlag.FP16)
        config.set_calibration_profile(profile)
        config.int8_calibrator = _calibrator(trt, image_size, max_batch)
    elif precision != "fp32":
        raise ModelError(f"TensorRT precision must be fp32, fp16 or int8, got {precision!r}")
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise ModelError(f"TensorRT could not build a {precision} engine from {onnx_path}")
    plan_path.write_bytes(bytes(plan))


def _calibrator(trt: ModuleType, image_size: int, batch: int, batches: int = 8) -> Any:
    """An entropy calibrator over smooth generated images (uint8 [batch, S, S, 3])."""
    import torch  # the export side has torch; it holds the device buffer

    class _Calibrator(trt.IInt8EntropyCalibrator2):  # type: ignore[misc,name-defined]
        def __init__(self) -> None:
            super().__init__()
            self._left = batches
            self._rng = np.random.default_rng(0)
            self._buf: Any = None

        def get_batch_size(self) -> int:
            return batch

        def get_batch(self, names: list[str]) -> list[int] | None:
            if self._left == 0:
                return None
            self._left -= 1
            x = self._rng.integers(0, 256, (batch, 8, 8, 3), dtype=np.uint8)
            x = np.kron(x, np.ones((1, image_size // 8 + 1, image_size // 8 + 1, 1), np.uint8))
            self._buf = torch.from_numpy(
                np.ascontiguousarray(x[:, :image_size, :image_size])
            ).cuda()
            return [int(self._buf.data_ptr())]

        def read_calibration_cache(self) -> None:
            return None

        def write_calibration_cache(self, cache: bytes) -> None:
            return None

    return _Calibrator()
