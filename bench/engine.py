"""Engine throughput on a ViT-B/32-shaped random CLIP: PyTorch eager fp32, ONNX fp32, ONNX INT8
(dynamic, and static QDQ calibrated on the sample photos: `onnx-int8-static`) and TorchScript at
batch 1, 8 and 32, through the same engines the services use.

    python -m bench.engine [--threads 2] [--seconds 3] [--per-channel] [--engines ...]

The model is written once by `init-model --arch vit-b-32` into --model-dir (cached) and exported
to a fresh bundle each run. Prints a table; the last stdout line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from harclip.config import ModelSettings, load_settings
from harclip.model.bundle import Bundle

ENGINES = ("pytorch", "onnx", "onnx-int8", "onnx-int8-static", "torchscript")
STATIC_FILE = "encoder.int8.static.onnx"


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--model-dir", type=Path, default=Path("state/bench/vit-b-32-random"))
    p.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32])
    p.add_argument("--threads", type=int, default=2, help="intra-op threads, every engine")
    p.add_argument("--seconds", type=float, default=3.0, help="timing per engine and batch")
    p.add_argument("--per-channel", action="store_true", help="INT8 weights per channel")
    p.add_argument("--engines", nargs="+", choices=ENGINES, default=list(ENGINES))
    p.add_argument("--calibration", type=Path, default=None,
                   help="photos for static INT8 (default: the sample photos)")  # fmt: skip
    p.add_argument("--calibration-images", type=int, default=64)
    return p.parse_args(argv)


def _measure(
    name: str,
    model_dir: Path,
    bundle: Path,
    batches: list[int],
    seconds: float,
    threads: int,
    check: np.ndarray,
) -> tuple[dict[int, float], np.ndarray]:
    """In a fresh process: img/s of one engine per batch size, and its embeddings of `check`."""
    from harclip.clip.validate import generated_images, pytorch_embed, time_batches

    fn: Callable[[np.ndarray], np.ndarray]
    if name == "pytorch":
        import torch

        from harclip.clip.load import load_clip

        torch.set_num_threads(threads)
        fn = pytorch_embed(load_clip(model_dir))
    elif name == "onnx-int8-static":
        from harclip.engines.onnx import OnnxEngine

        m = Bundle.load(bundle).manifest
        fn = OnnxEngine(bundle / STATIC_FILE, name="onnx-int8", image_size=m.image_size,
                        embed_dim=m.embed_dim, intra_op_threads=threads).embed  # fmt: skip
    else:
        from harclip.engines import create_engine

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load deprecation
            engine = create_engine(
                Bundle.load(bundle),
                name,  # type: ignore[arg-type]
                ModelSettings(intra_op_threads=threads, device="cpu"),  # a CPU benchmark
            )
        fn = engine.embed
    emb = fn(check)
    size = check.shape[1]
    rates = {b: time_batches(fn, generated_images(b, size), seconds)["img_per_s"] for b in batches}
    return rates, emb


def _static(bundle: Path, calibration: Path, n: int, exclude: list[Path], per_channel: bool) -> int:
    """Static QDQ INT8 of the bundle's encoder.onnx into STATIC_FILE; photos calibrated on."""
    from harclip.clip.quantize import calibration_images, quantize_static_int8

    b = Bundle.load(bundle)
    images, _ = calibration_images(calibration, b.manifest.image_size, max_pixels=10**8, n=n,
                                   exclude=exclude)  # fmt: skip
    quantize_static_int8(b.engine_file("onnx"), bundle / STATIC_FILE, images, per_channel)
    return len(images)


def _export(model_dir: Path, out: Path, options: object) -> Path:
    from harclip.clip.export import export_bundle
    from harclip.clip.load import load_clip

    return export_bundle(load_clip(model_dir), out, options).path  # type: ignore[arg-type]


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    from harclip.clip.export import ExportOptions
    from harclip.clip.init import init_model
    from harclip.clip.validate import in_fresh_process, validation_images

    if not (args.model_dir / "config.json").is_file():
        print(f"writing a random ViT-B/32 CLIP to {args.model_dir} ...", file=sys.stderr)
        in_fresh_process(init_model, args.model_dir, "vit-b-32")
    settings = load_settings()
    rates: dict[str, dict[int, float]] = {}
    cosine: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="harclip-bench-") as tmp:
        start = time.perf_counter()
        options = ExportOptions(
            formats=("onnx", "int8", "torchscript"), per_channel=args.per_channel
        )
        bundle = in_fresh_process(_export, args.model_dir, Path(tmp) / "bundle", options)
        print(f"export: {time.perf_counter() - start:.1f} s", file=sys.stderr)
        check, source = validation_images(settings, Bundle.load(bundle).manifest.image_size, 32)
        calibration = args.calibration or settings.sample_photos
        if "onnx-int8-static" in args.engines:
            if calibration is None:
                raise SystemExit("onnx-int8-static needs --calibration DIR or HARCLIP_SAMPLE_DATA")
            from harclip.clip.quantize import spread

            photos = settings.sample_photos
            held = spread(sorted(photos.glob("*/*.jpg")), 32) if photos else []  # the check set
            n_cal = in_fresh_process(_static, bundle, calibration, args.calibration_images, held,
                                     args.per_channel)  # fmt: skip
            print(f"static INT8 calibrated on {n_cal} photos of {calibration}", file=sys.stderr)
        ref = None
        # each engine in its own process, as a worker runs it: torch's OpenMP threads, once
        # they have run in a process, slow ONNX Runtime's threads there about 2x
        for name in ["pytorch", *[e for e in args.engines if e != "pytorch"]]:
            rates[name], emb = in_fresh_process(
                _measure, name, args.model_dir, bundle, args.batches, args.seconds, args.threads,
                check,
            )  # fmt: skip
            ref = emb if ref is None else ref
            cosine[name] = float((emb * ref).sum(axis=1).min())
            for b, r in rates[name].items():
                print(f"  {name:<12} batch {b:>3}: {r:8.1f} img/s", file=sys.stderr)
    engines = list(rates)

    print(f"\nimg/s, {args.threads} threads, ViT-B/32 random weights, embeddings vs PyTorch "
          f"on {len(check)} {source}")  # fmt: skip
    print(
        f"{'engine':<12}"
        + "".join(f"{'b' + str(b):>10}" for b in args.batches)
        + f"{'min cos':>10}"
    )
    for name in engines:
        row = "".join(f"{rates[name][b]:10.1f}" for b in args.batches)
        print(f"{name:<12}{row}{cosine[name]:10.5f}")
    result: dict[str, object] = {
        "threads": args.threads,
        "per_channel": args.per_channel,
        "img_per_s": {n: {str(b): round(r, 1) for b, r in rates[n].items()} for n in engines},
        "min_cosine_vs_torch": {name: round(c, 6) for name, c in cosine.items()},
        "int8_cosine_min": round(cosine["onnx-int8"], 6) if "onnx-int8" in cosine else None,
    }
    if "onnx-int8-static" in cosine:
        result["static_int8_cosine_min"] = round(cosine["onnx-int8-static"], 6)

    def ratio(a: str, b: str, batch: int) -> float | None:
        if a in rates and b in rates and batch in rates[a]:
            return round(rates[a][batch] / rates[b][batch], 3)
        return None

    for key, a, b in (("onnx_vs_torch", "onnx", "pytorch"), ("int8_vs_onnx", "onnx-int8", "onnx"),
                      ("static_vs_onnx", "onnx-int8-static", "onnx"),
                      ("static_vs_dynamic", "onnx-int8-static", "onnx-int8"),
                      ("torchscript_vs_torch", "torchscript", "pytorch")):  # fmt: skip
        for batch in args.batches:
            r = ratio(a, b, batch)
            if r is not None and (batch == 8 or key == "static_vs_dynamic"):
                result[f"{key}_b{batch}"] = r
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
