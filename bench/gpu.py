"""GPU engines on a ViT-B/32-shaped random CLIP: the torch engine in fp32, fp16 and bf16 and the
TorchScript engine on CUDA at batch 1, 8, 32 and 128, against ONNX Runtime on the CPU cores; then
the hot path end to end.

    python -m bench.gpu [--device cuda] [--seconds 2] [--quick]

End to end (`e2e_*` keys): JPEG bytes in memory (the sample photos, repeated) -> decode ->
resize/crop -> engine (torch fp16 with CUDA graphs) -> head top-k, frames/s at batch 1, 32 and
128, four ways: `e2e_gpu` (nvJPEG + resize on the GPU, `harclip.engines.gpu_decode`), the same
with the next batch decoding on a second thread while the engine runs (`e2e_gpu_overlap`, as the
worker does), `cpu_decode` (OpenCV on every core, then the GPU engine) and `model_only`
(pre-decoded pixels, engine + head).

The model is written once by `init_model(dir, "vit-b-32")` into --model-dir (cached) and exported
with `export_bundle` (onnx + torchscript + hf) to a fresh bundle each run. Every engine is timed
through its `embed` (uint8 in, float32 numpy out, so each call includes the host-device copies
and a synchronisation). fp16, bf16, TorchScript and ONNX Runtime embeddings are compared with
torch fp32 on the same images: sample photos when HARCLIP_SAMPLE_DATA points at them, else
generated images. Prints a table; the last stdout line is one JSON object, also written to
$OUT/gpu.json when --json-out is given.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench.gpu_e2e import WARMUP_CALLS, e2e_result, jpegs_to_decode, measure_e2e

TORCH_DTYPES = ("fp32", "fp16", "bf16")


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--model-dir", type=Path, default=Path("state/bench/vit-b-32-random"))
    p.add_argument("--device", default="cuda", help="torch device for the torch engines")
    p.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32, 128])
    p.add_argument("--ort-batches", type=int, nargs="+", default=[8, 32])
    p.add_argument("--ort-threads", type=int, default=0, help="0: every core (os.cpu_count())")
    p.add_argument("--seconds", type=float, default=2.0, help="timing per engine and batch")
    p.add_argument("--check-images", type=int, default=32, help="images compared across engines")
    p.add_argument("--e2e-batches", type=int, nargs="+", default=[1, 32, 128])
    p.add_argument("--e2e-dtype", choices=TORCH_DTYPES, default=None,
                   help="end-to-end precision (default: fp16 on cuda, fp32 on cpu)")  # fmt: skip
    quick = "batches 1 and 8, ONNX Runtime at 8, 0.3 s each: a smoke test on CPU"
    p.add_argument("--quick", action="store_true", help=quick)
    p.add_argument("--json-out", type=Path, default=None, help="also write the JSON here")
    args = p.parse_args(argv)
    if args.quick:
        args.batches, args.ort_batches, args.seconds = [1, 8], [8], 0.3
        args.e2e_batches = [1, 8]
    if args.e2e_dtype is None:
        args.e2e_dtype = "fp16" if args.device.startswith("cuda") else "fp32"
    return args


def _time(fn: Callable[[np.ndarray], np.ndarray], images: np.ndarray, seconds: float) -> float:
    """ms per batch of `fn(images)` after warm-up calls, over at least 3 calls and `seconds`."""
    from harclip.clip.validate import time_batches

    for _ in range(WARMUP_CALLS - 1):  # time_batches makes one more
        fn(images)
    return time_batches(fn, images, seconds)["ms_per_batch"]


def _embed_all(fn: Callable[[np.ndarray], np.ndarray], images: np.ndarray) -> np.ndarray:
    """float32 [N, D] in chunks of 32 (the batch the engines are compared at)."""
    return np.concatenate([fn(images[i : i + 32]) for i in range(0, len(images), 32)])


def _export(model_dir: Path, out: Path) -> Path:
    """The bundle (onnx + torchscript + hf) of the model in `model_dir`, written to `out`; the
    ONNX IR version capped at 10 so older ONNX Runtime builds load it."""
    from harclip.clip.export import ExportOptions, export_bundle
    from harclip.clip.load import load_clip

    options = ExportOptions(formats=("onnx", "torchscript", "torch"))
    bundle = export_bundle(load_clip(model_dir), out, options)
    _cap_ir_version(bundle.engine_file("onnx"))
    return bundle.path


def _cap_ir_version(path: Path, cap: int = 10) -> None:
    import onnx

    header = onnx.load(str(path), load_external_data=False)
    if header.ir_version <= cap:
        return
    model = onnx.load(str(path))
    print(f"capping {path.name} IR version {model.ir_version} -> {cap}", file=sys.stderr)
    model.ir_version = cap
    onnx.save(model, str(path))


def _measure_gpu(
    bundle_path: Path, device: str, batches: list[int], seconds: float, check: np.ndarray
) -> tuple[dict[str, dict[int, float]], dict[str, np.ndarray], dict[str, str]]:
    """ms/batch and check-image embeddings of the torch engine per dtype and of TorchScript on
    `device`; an engine that cannot run there is reported in the third dict, not raised."""
    import torch

    from harclip.clip.validate import generated_images
    from harclip.config import ModelSettings
    from harclip.engines import create_engine
    from harclip.errors import HarclipError
    from harclip.model.bundle import Bundle

    bundle = Bundle.load(bundle_path)
    size = bundle.manifest.image_size
    variants: list[tuple[str, Any, ModelSettings]] = [
        (f"torch-{d}", "torch", ModelSettings(torch_dtype=d, device=device)) for d in TORCH_DTYPES
    ]
    variants.append(("torchscript", "torchscript", ModelSettings(device=device)))
    ms: dict[str, dict[int, float]] = {}
    emb: dict[str, np.ndarray] = {}
    failed: dict[str, str] = {}
    for label, name, settings in variants:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load deprecation
                engine = create_engine(bundle, name, settings)
            emb[label] = _embed_all(engine.embed, check)
            ms[label] = {
                b: _time(engine.embed, generated_images(b, size), seconds) for b in batches
            }
            engine.close()
        except (HarclipError, RuntimeError) as e:
            failed[label] = f"{type(e).__name__}: {str(e).splitlines()[0][:300]}"
            print(f"  {label}: failed: {failed[label]}", file=sys.stderr)
            continue
        finally:
            if device.startswith("cuda"):
                torch.cuda.empty_cache()
        for b, t in ms[label].items():
            print(f"  {label:<12} batch {b:>3}: {b * 1000 / t:9.1f} img/s {t:8.2f} ms",
                  file=sys.stderr)  # fmt: skip
    return ms, emb, failed


def _measure_ort(
    bundle_path: Path, batches: list[int], seconds: float, threads: int, check: np.ndarray
) -> tuple[dict[int, float], np.ndarray]:
    """In a fresh process (no torch threads there): ms/batch of ONNX Runtime CPU per batch, and
    its check-image embeddings."""
    from harclip.clip.validate import generated_images
    from harclip.config import ModelSettings
    from harclip.engines import create_engine
    from harclip.model.bundle import Bundle

    bundle = Bundle.load(bundle_path)
    engine = create_engine(bundle, "onnx", ModelSettings(intra_op_threads=threads))
    size = bundle.manifest.image_size
    emb = _embed_all(engine.embed, check)
    ms = {b: _time(engine.embed, generated_images(b, size), seconds) for b in batches}
    engine.close()
    return ms, emb


def _compare(emb: np.ndarray, ref: np.ndarray) -> tuple[float, float]:
    """(max |Δ| over every element, min row cosine) of L2-normalised embeddings."""
    return float(np.abs(emb - ref).max()), float((emb * ref).sum(axis=1).min())


def _device_name(device: str) -> str:
    import torch

    if device.startswith("cuda"):
        return f"{torch.cuda.get_device_name(torch.device(device))} (torch {torch.__version__})"
    return f"cpu x{os.cpu_count()} (torch {torch.__version__})"


def _table(
    ms: dict[str, dict[int, float]],
    compare: dict[str, tuple[float, float]] | None,
    batches: list[int],
    unit: str = "img/s",
) -> str:
    head = f"{unit:<18}" + "".join(f"{'b' + str(b):>18}" for b in batches)
    lines = [head + (f"{'max |Δ|':>10}{'min cos':>10}" if compare is not None else "")]
    for label, per in ms.items():
        cells = "".join(
            f"{b * 1000 / per[b]:9.1f} {per[b]:7.2f}ms" if b in per else f"{'-':>18}"
            for b in batches
        )
        if compare is None:
            lines.append(f"{label:<18}{cells}")
            continue
        diff, cos = compare.get(label, (float("nan"), float("nan")))
        lines.append(f"{label:<18}{cells}{diff:10.2e}{cos:10.6f}")
    return "\n".join(lines)


def _result(
    ms: dict[str, dict[int, float]],
    compare: dict[str, tuple[float, float]],
    failed: dict[str, str],
    meta: dict[str, object],
) -> dict[str, object]:
    out: dict[str, object] = dict(meta)
    for label, per in ms.items():
        key = label.replace("-", "_").replace("onnx_cpu", "ort_cpu")
        for b, t in per.items():
            out[f"{key}_b{b}_img_s"] = round(b * 1000 / t, 1)
            out[f"{key}_b{b}_ms"] = round(t, 3)
    for label, (diff, cos) in compare.items():
        key = label.removeprefix("torch-").replace("-", "_").replace("onnx_cpu", "ort_cpu")
        out[f"{key}_max_abs_diff"] = float(f"{diff:.3g}")
        out[f"{key}_cosine_min"] = round(cos, 6)
    fp32 = ms.get("torch-fp32", {})
    for d in ("fp16", "bf16"):
        for b in (32, 128):
            if b in fp32 and b in ms.get(f"torch-{d}", {}):
                out[f"{d}_vs_fp32_b{b}"] = round(fp32[b] / ms[f"torch-{d}"][b], 3)
    ort = ms.get("onnx-cpu", {})
    for b in ort:
        for label in ("torch-fp32", "torch-fp16"):
            if b in ms.get(label, {}):
                suffix = "" if label == "torch-fp16" else "_fp32"
                out[f"gpu_vs_ort_cpu_b{b}{suffix}"] = round(ort[b] / ms[label][b], 2)
    if failed:
        out["failed"] = failed
    return out


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    from harclip.clip.init import init_model
    from harclip.clip.validate import in_fresh_process, validation_images
    from harclip.config import load_settings
    from harclip.model.bundle import Bundle

    if not (args.model_dir / "config.json").is_file():
        print(f"writing a random ViT-B/32 CLIP to {args.model_dir} ...", file=sys.stderr)
        start = time.perf_counter()
        in_fresh_process(init_model, args.model_dir, "vit-b-32")
        print(f"init: {time.perf_counter() - start:.1f} s", file=sys.stderr)
    settings = load_settings()
    threads = args.ort_threads or os.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix="harclip-gpu-") as tmp:
        start = time.perf_counter()
        bundle = in_fresh_process(_export, args.model_dir, Path(tmp) / "bundle")
        print(f"export: {time.perf_counter() - start:.1f} s", file=sys.stderr)
        size = Bundle.load(bundle).manifest.image_size
        check, source = validation_images(settings, size, args.check_images)
        # ONNX Runtime first, in its own process, before this one starts torch's threads
        ort_ms, ort_emb = in_fresh_process(
            _measure_ort, bundle, args.ort_batches, args.seconds, threads, check
        )
        for b, t in ort_ms.items():
            print(f"  onnx-cpu     batch {b:>3}: {b * 1000 / t:9.1f} img/s {t:8.2f} ms",
                  file=sys.stderr)  # fmt: skip
        ms, emb, failed = _measure_gpu(bundle, args.device, args.batches, args.seconds, check)
        jpegs, jpeg_source = jpegs_to_decode(settings)
        print(f"end to end: {len(jpegs)} {jpeg_source}, torch {args.e2e_dtype} on {args.device}",
              file=sys.stderr)  # fmt: skip
        e2e = measure_e2e(bundle, args.device, args.e2e_dtype, args.e2e_batches, args.seconds,
                           jpegs)  # fmt: skip
    ms["onnx-cpu"] = ort_ms
    emb["onnx-cpu"] = ort_emb
    compare = {}
    if "torch-fp32" in emb:
        compare = {k: _compare(e, emb["torch-fp32"]) for k, e in emb.items() if k != "torch-fp32"}
    batches = sorted(set(args.batches) | set(args.ort_batches))
    device = _device_name(args.device)
    print(f"\n{device}; ViT-B/32 random weights; img/s and ms per batch through engine.embed "
          f"(uint8 in, float32 out); onnx-cpu: ONNX Runtime CPU, {threads} threads; max |Δ| and "
          f"min cosine vs torch-fp32 on {len(check)} {source}")  # fmt: skip
    print(_table(ms, compare, batches))
    print(f"\nend to end, frames/s and ms per batch: JPEG bytes ({len(jpegs)} {jpeg_source}, "
          f"repeated) -> top-k, torch {args.e2e_dtype} on {args.device}")  # fmt: skip
    print(_table(e2e, None, args.e2e_batches, "frames/s"))
    meta: dict[str, object] = {
        "device": device,
        "torch_device": args.device,
        "ort_threads": threads,
        "check_images": f"{len(check)} {source}",
        "seconds": args.seconds,
    }
    try:
        import onnxruntime

        meta["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        pass
    meta |= {"e2e_images": f"{len(jpegs)} {jpeg_source}", "e2e_dtype": args.e2e_dtype}
    result = _result(ms, compare, failed, meta) | e2e_result(e2e)
    line = json.dumps(result)
    if args.json_out is not None:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(line + "\n")
    print(line)
    return 1 if "torch-fp32" in failed else 0


if __name__ == "__main__":
    sys.exit(main())
