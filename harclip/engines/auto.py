"""`engine: auto`: the fastest engine this bundle has validated for this machine, and why.

On a CUDA device (`device: auto` finds one through the driver, without importing torch): native
TensorRT when it is installed and the bundle has a plan, else ONNX Runtime's CUDA provider, else
torch fp16 (then TorchScript) on the GPU; a candidate that cannot start is skipped and named in
the reason. On CPU: the bundle's INT8 engine when its recorded validation against PyTorch
(`manifest.json["validation"]`, written by `harclip export --validate`) passed the thresholds
below, else fp32 ONNX.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from harclip.config import EngineName, ModelSettings
from harclip.engines.base import Engine
from harclip.engines.device import resolve_device
from harclip.engines.named import open_named
from harclip.errors import EngineUnavailable, ModelError

if TYPE_CHECKING:
    from harclip.model.bundle import Bundle, Manifest

log = logging.getLogger(__name__)

# INT8 serves by default only when its validation against PyTorch reached both (recorded at
# export on the held-out calibration photos, or by --validate on the sample photos): the same
# top-1 label on at least 98 % of the *decisive* photos (fp32 top-1 margin over twice the score
# error INT8 shows, harclip.clip.agreement; older records without it: of all photos), and no
# embedding below cosine 0.99 (measured on ViT-B/32: 100 % and >= 0.9997).
INT8_MIN_TOP1 = 0.98
INT8_MIN_COSINE = 0.99
_GPU_TRT_PRECISIONS = ("fp16", "int8", "fp32")  # preference when the configured one is missing


@dataclass(frozen=True)
class Choice:
    """One engine `auto` may open: its name, the settings it opens with, and why it was picked."""

    name: EngineName
    settings: ModelSettings
    reason: str


def int8_verdict(manifest: Manifest) -> tuple[bool, str]:
    """Whether the bundle's INT8 engine may serve by default, and why, from the validation the
    manifest records."""
    if "onnx-int8" not in manifest.engines:
        return False, "the bundle has no INT8 engine (harclip export --format int8)"
    validation = manifest.validation
    row = validation.get("engines", {}).get("onnx-int8")
    if not isinstance(row, dict):
        return False, "its INT8 engine was never validated (harclip export --validate)"
    if "error" in row:
        return False, f"its INT8 validation failed: {row['error']}"
    try:
        raw, cosine = float(row["top1_agreement"]), float(row["min_cosine"])
        aware = "decisive_agreement" in row
        top1 = float(row["decisive_agreement"]) if aware else raw
        decisive = f" on {int(row['decisive_images'])} decisive" if aware else ""
        bound = f", score error bound {float(row['error_bound']):.3g}" if aware else ""
    except (KeyError, TypeError, ValueError):
        return False, f"its INT8 validation record is incomplete: {row}"
    kind = manifest.metrics.get("int8", {}).get("kept", "dynamic")
    figures = (
        f"top-1 agreement {100 * top1:.1f} %{decisive} (needs >= {100 * INT8_MIN_TOP1:.0f} %"
        + (f"; raw {100 * raw:.1f} %{bound}" if aware else "")
        + f"), min cosine {cosine:.5f} (needs >= {INT8_MIN_COSINE})"
    )
    where = f"on {validation.get('images', '?')} {validation.get('source', 'images')}"
    if top1 >= INT8_MIN_TOP1 and cosine >= INT8_MIN_COSINE:
        return True, f"INT8 ({kind}) validated against PyTorch {where}: {figures}"
    return False, f"its INT8 ({kind}) validation {where} is below the thresholds: {figures}"


def cpu_choice(bundle: Bundle, settings: ModelSettings) -> Choice:
    """INT8 when validated, else fp32 ONNX, on the CPU execution provider."""
    cpu = settings.model_copy(update={"providers": ("CPUExecutionProvider",), "device": "cpu"})
    ok, why = int8_verdict(bundle.manifest)
    if ok:
        return Choice("onnx-int8", cpu, why)
    return Choice("onnx", cpu, f"fp32 ONNX on CPU: {why}")


def gpu_choices(bundle: Bundle, settings: ModelSettings, device: str) -> Iterator[Choice]:
    """The GPU engines to try, best first, each only where its runtime and file are present."""
    engines = bundle.manifest.engines
    trt = engines.get("tensorrt")
    if isinstance(trt, dict) and trt and importlib.util.find_spec("tensorrt") is not None:
        prefs = (settings.tensorrt_precision, *_GPU_TRT_PRECISIONS)
        precision = next(p for p in (*prefs, *trt) if p in trt)
        s = settings.model_copy(update={"tensorrt_precision": precision})
        yield Choice("tensorrt", s, f"TensorRT {precision} plan on {device}")
    if _ort_has_cuda():
        s = settings.model_copy(update={"providers": ("CUDAExecutionProvider",)})
        yield Choice("onnx", s, f"ONNX Runtime CUDA provider on {device} (no TensorRT plan)")
    if "torch" in engines:
        s = settings.model_copy(update={"torch_dtype": "fp16", "device": device})
        yield Choice("torch", s, f"torch fp16 on {device} (no TensorRT, no onnxruntime-gpu)")
    if "torchscript" in engines:
        s = settings.model_copy(update={"device": device})
        yield Choice("torchscript", s, f"TorchScript fp32 on {device} (no fp16 engine)")


def _ort_has_cuda() -> bool:
    import onnxruntime as ort

    return "CUDAExecutionProvider" in ort.get_available_providers()


def open_auto(bundle: Bundle, settings: ModelSettings) -> tuple[Engine, str]:
    """Open the engine `auto` picks for `bundle` here; returns it and the reason (one line)."""
    device = resolve_device(settings.device)
    skipped: list[str] = []
    if device.startswith("cuda"):
        for choice in gpu_choices(bundle, settings, device):
            try:
                return open_named(bundle, choice.name, choice.settings), choice.reason
            except (EngineUnavailable, ModelError) as e:
                skipped.append(f"{choice.name}: {e}")
        if not skipped:
            skipped.append("the bundle has no GPU engine file and onnxruntime-gpu is missing")
    choice = cpu_choice(bundle, settings)
    reason = choice.reason
    if skipped:
        reason += f" (on {device}, skipped: {'; '.join(skipped)})"
    return open_named(bundle, choice.name, choice.settings), reason


def describe(engine: Any) -> str:
    """The engine's `label` (e.g. `onnx-int8`, `torch/fp16/cuda`), or its name."""
    return str(getattr(engine, "label", None) or engine.name)
