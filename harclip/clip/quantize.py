"""INT8 image towers from `encoder.onnx`: dynamic (weights int8, activations quantized at run
time) and static QDQ (activations' ranges calibrated once on sample photos), and the rule that
keeps one of them as the bundle's `encoder.int8.onnx`.

Both quantize the MatMul/Gemm weights (int8, per tensor unless `per_channel`); the uint8 `pixels`
input and the float output stay as they are. Static quantization also fixes the scale of each
weight-MatMul's input from the calibration photos (uint8 activations, MinMax), so no range is
computed per batch; the attention MatMuls (two activations) stay in float for accuracy.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from harclip.clip.agreement import Agreement, compare
from harclip.clip.sampling import spread
from harclip.errors import ModelError

if TYPE_CHECKING:
    from harclip.model.head import Head

Int8Kind = Literal["dynamic", "static"]
CALIBRATION_IMAGES = 64  # photos whose activations set the static ranges
CHECK_IMAGES = 512  # held-out photos both candidates are checked on (the rest of the folder)
_CALIBRATION_BATCH = 8
_OPS = ["MatMul", "Gemm"]


@contextmanager
def _quiet() -> Iterator[None]:
    """onnxruntime.quantization warns and logs advice on the root logger; the result is checked
    against PyTorch afterwards, which is where a bad quantization shows."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logging.disable(logging.WARNING)
        try:
            yield
        finally:
            logging.disable(logging.NOTSET)


def quantize_dynamic_int8(src: Path, dst: Path, per_channel: bool = False) -> None:
    """Dynamic INT8: weights int8 now, each activation's range measured per batch at run time."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with _quiet():
        quantize_dynamic(
            model_input=src,
            model_output=dst,
            weight_type=QuantType.QInt8,
            per_channel=per_channel,
            op_types_to_quantize=_OPS,
        )


class _Batches:
    """ONNX Runtime's `CalibrationDataReader` over uint8 [N, S, S, 3] images, in batches."""

    def __init__(self, images: np.ndarray, batch: int) -> None:
        self._chunks = iter([images[i : i + batch] for i in range(0, len(images), batch)])

    def get_next(self) -> dict[str, np.ndarray] | None:
        chunk = next(self._chunks, None)
        return None if chunk is None else {"pixels": np.ascontiguousarray(chunk)}

    def __iter__(self) -> _Batches:
        return self

    def __next__(self) -> dict[str, np.ndarray]:
        item = self.get_next()
        if item is None:
            raise StopIteration
        return item


def quantize_static_int8(
    src: Path, dst: Path, images: np.ndarray, per_channel: bool = False
) -> None:
    """Static QDQ INT8 calibrated on `images` (uint8 [N, S, S, 3], preprocessed as served):
    uint8 activations (x86's U8S8 kernels), int8 weights, MinMax ranges; MatMul inputs quantized
    with the calibrated scales, their outputs left in float."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    if len(images) == 0:
        raise ModelError("static INT8 needs calibration images; none could be decoded")
    reader = _Batches(images, _CALIBRATION_BATCH)
    assert isinstance(reader, CalibrationDataReader)  # structural (get_next)
    with _quiet():
        quantize_static(
            model_input=src,
            model_output=dst,
            calibration_data_reader=reader,
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=_OPS,
            per_channel=per_channel,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
            # Only weight MatMuls (the attention products stay float), and their outputs stay
            # float: a Q/DQ pair after every MatMul measured ~20 % slower here. (MinMax keeps
            # one min/max pair per tensor and batch, so calibration memory stays small.)
            extra_options={
                "MatMulConstBOnly": True,
                "OpTypesToExcludeOutputQuantization": _OPS,
            },
        )


def calibration_images(
    folder: Path, size: int, *, max_pixels: int, n: int = CALIBRATION_IMAGES,
    exclude: Sequence[Path] = (),
) -> tuple[np.ndarray, int]:  # fmt: skip
    """Up to `n` images from `folder` (recursively; spread evenly over the sorted files, leaving
    out `exclude`, e.g. the validation photos), preprocessed as the services do: uint8
    [n, S, S, 3] and how many files were read."""
    from harclip.model.imageio import iter_image_paths
    from harclip.model.preprocess import preprocess_batch

    if not folder.is_dir():
        raise ModelError(f"calibration folder {folder} is not a folder of images")
    skip = {p.resolve() for p in exclude}
    paths = [p for p in iter_image_paths([folder]) if p.resolve() not in skip]
    if not paths:
        raise ModelError(f"calibration folder {folder} holds no images (.jpg, .png, ...)")
    chosen = spread(paths, n)
    pixels, errors = preprocess_batch([p.read_bytes() for p in chosen], size, max_pixels=max_pixels)
    ok = [e is None for e in errors]
    return pixels[ok], len(chosen)


@dataclass(frozen=True)
class Int8Figures:
    """One INT8 candidate against PyTorch (held-out photos) and its speed (fresh process)."""

    img_per_s: float
    ms_per_batch: float
    agreement: Agreement

    @property
    def min_cosine(self) -> float:
        return self.agreement.min_cosine

    @property
    def top1(self) -> float:
        """The margin-aware top-1 agreement (harclip.clip.agreement)."""
        return self.agreement.decisive_agreement

    def as_dict(self) -> dict[str, float | int]:
        return {
            "img_per_s": round(self.img_per_s, 1),
            "ms_per_batch": round(self.ms_per_batch, 2),
            **self.agreement.as_dict(),
        }


def pick_int8(figures: dict[Int8Kind, Int8Figures]) -> tuple[Int8Kind, str]:
    """The candidate to keep, and why: the faster one at equal agreement. Agreement is equal when
    the margin-aware top-1 agreements differ by at most one decisive image (of the fewer) and
    both pass, or both fail, `harclip.engines.auto`'s thresholds; otherwise the more accurate one
    is kept."""
    from harclip.engines.auto import INT8_MIN_COSINE, INT8_MIN_TOP1

    def passes(f: Int8Figures) -> bool:
        return f.top1 >= INT8_MIN_TOP1 and f.min_cosine >= INT8_MIN_COSINE

    kinds = sorted(figures, key=lambda k: -figures[k].img_per_s)  # fastest first
    fastest, other = kinds[0], kinds[-1]
    f, g = figures[fastest], figures[other]
    if fastest == other:
        return fastest, "the only candidate"
    tolerance = 1 / max(min(f.agreement.decisive, g.agreement.decisive), 1) + 1e-9
    if passes(f) == passes(g) and abs(f.top1 - g.top1) <= tolerance:
        speed = f.img_per_s / g.img_per_s
        return fastest, f"equal agreement, {fastest} {speed:.2f}x the speed of {other}"
    better = fastest if (passes(f), f.top1) > (passes(g), g.top1) else other
    return better, f"{better} agrees better with PyTorch"


def time_onnx_files(
    paths: Sequence[Path], size: int, dim: int, batch: int, seconds: float, threads: int
) -> list[dict[str, float]]:
    """img/s and ms/batch (medians) of ONNX image towers on the CPU, timed in turns: one batch of
    each per round, so a machine whose load changes during the run slows all of them alike (run
    it in a fresh process: no torch threads there)."""
    import time

    from harclip.clip.validate import generated_images
    from harclip.engines.onnx import OnnxEngine

    engines = [OnnxEngine(p, name="onnx-int8", image_size=size, embed_dim=dim,
                          intra_op_threads=threads) for p in paths]  # fmt: skip
    images = generated_images(batch, size)
    try:
        for e in engines:
            e.embed(images)  # warm-up
        times: list[list[float]] = [[] for _ in engines]
        start = time.perf_counter()
        while len(times[0]) < 3 or time.perf_counter() - start < seconds * len(engines):
            for e, t in zip(engines, times, strict=True):
                t0 = time.perf_counter()
                e.embed(images)
                t.append(time.perf_counter() - t0)
        medians = [float(np.median(t)) for t in times]
        return [{"img_per_s": batch / m, "ms_per_batch": 1000 * m} for m in medians]
    finally:
        for e in engines:
            e.close()


def embed_onnx_file(path: Path, images: np.ndarray, size: int, dim: int) -> np.ndarray:
    """float32 [N, D] embeddings of `images` through an ONNX image tower, in batches of 32."""
    from harclip.engines.onnx import OnnxEngine

    engine = OnnxEngine(path, name="onnx-int8", image_size=size, embed_dim=dim)
    try:
        return np.concatenate([engine.embed(images[i : i + 32]) for i in range(0, len(images), 32)])
    finally:
        engine.close()


def build_int8(
    clip: Any,
    head: Head,
    src: Path,
    dst: Path,
    calibration: Path,
    *,
    per_channel: bool = False,
    n_images: int = CALIBRATION_IMAGES,
    check_images: int = CHECK_IMAGES,
    batch: int = 8,
    seconds: float = 2.0,
    max_pixels: int = 40_000_000,
) -> dict[str, Any]:
    """Dynamic and static INT8 of `src`, both checked against PyTorch (`clip`, scored by `head`)
    on up to `check_images` photos of `calibration` that the calibration did not see (all the
    folder's other photos, spread over it; the calibration photos themselves when fewer than
    `n_images` are left), judged by `harclip.clip.agreement`, and timed at `batch` in turns in
    a fresh process; the one `pick_int8` keeps is written to `dst`. Returns the record for
    `manifest.json` (`metrics.int8`): both candidates' figures, which was kept and why."""
    from harclip.clip.validate import in_fresh_process, torch_embeddings
    from harclip.model.imageio import iter_image_paths

    size, dim = clip.image_size, clip.embed_dim
    paths = list(iter_image_paths([calibration])) if calibration.is_dir() else []
    chosen = {p.resolve() for p in spread(paths, n_images)}
    rest = [p for p in paths if p.resolve() not in chosen]
    held_out = spread(rest, check_images) if len(rest) >= n_images else []
    images, read = calibration_images(
        calibration, size, max_pixels=max_pixels, n=n_images, exclude=held_out
    )
    if held_out:
        check, source = _decode(held_out, size, max_pixels), f"held-out photos of {calibration}"
    else:  # too few photos to hold some out: check on the calibration photos themselves
        check, source = images, f"the calibration photos of {calibration}"
    files: dict[Int8Kind, Path] = {
        "dynamic": dst.with_name("encoder.int8.dynamic.onnx"),
        "static": dst.with_name("encoder.int8.static.onnx"),
    }
    quantize_dynamic_int8(src, files["dynamic"], per_channel)
    quantize_static_int8(src, files["static"], images, per_channel)
    ref = torch_embeddings(clip, check)
    figures: dict[Int8Kind, Int8Figures] = {}
    kinds = list(files)
    speeds = in_fresh_process(time_onnx_files, list(files.values()), size, dim, batch, seconds, 0)
    for kind, path, speed in zip(kinds, files.values(), speeds, strict=True):
        emb = embed_onnx_file(path, check, size, dim)
        figures[kind] = Int8Figures(
            img_per_s=speed["img_per_s"],
            ms_per_batch=speed["ms_per_batch"],
            agreement=compare(ref, emb, head),
        )
    kept, why = pick_int8(figures)
    files[kept].replace(dst)
    for path in files.values():
        path.unlink(missing_ok=True)
    return {
        "kept": kept,
        "why": why,
        "calibration": {"folder": str(calibration), "images": len(images), "files_read": read},
        "check": {"images": len(check), "source": source, "batch": batch},
        **{kind: f.as_dict() for kind, f in figures.items()},
    }


def _decode(paths: Sequence[Path], size: int, max_pixels: int) -> np.ndarray:
    from harclip.model.preprocess import preprocess_batch

    pixels, errors = preprocess_batch([p.read_bytes() for p in paths], size, max_pixels=max_pixels)
    return pixels[[e is None for e in errors]]
