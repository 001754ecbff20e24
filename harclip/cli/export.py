"""`harclip export`: a CLIP (hub id or folder) -> a model bundle, with a progress display,
optional validation against PyTorch and a benchmark per format."""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from harclip.argtypes import POSITIVE
from harclip.config import Settings

_FORMATS = ("onnx", "int8", "torchscript", "torch", "tensorrt")  # harclip.clip.export.FORMATS


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=None, help="hub id or local folder (default: settings)")
    parser.add_argument("--output", type=Path, required=True, help="bundle folder to write")
    parser.add_argument(
        "--format",
        nargs="+",
        choices=_FORMATS,
        default=["onnx"],
        dest="formats",
        help="formats to export (ONNX fp32, the text encoder and the head are always written)",
    )
    parser.add_argument(
        "--precision", choices=("fp32", "fp16", "int8"), default="fp16", help="TensorRT precision"
    )
    parser.add_argument(
        "--batch-size", type=POSITIVE, default=8, help="TensorRT max / benchmark batch"
    )
    parser.add_argument(
        "--labels", type=Path, default=None, help="label set JSON (default: 15 HAR)"
    )
    parser.add_argument("--name", default=None, help="bundle name in the manifest")
    parser.add_argument("--version", default="1", help="bundle version in the manifest")
    parser.add_argument("--per-channel", action="store_true", help="INT8 weights per channel")
    parser.add_argument(
        "--calibration",
        type=Path,
        default=None,
        metavar="DIR",
        help="photos to calibrate static INT8 on: int8 then builds dynamic and static INT8, "
        "checks both against PyTorch and keeps the faster at equal agreement",
    )
    parser.add_argument(
        "--calibration-images", type=POSITIVE, default=64, help="photos used from --calibration"
    )
    parser.add_argument("--validate", action="store_true", help="compare every engine with PyTorch")
    parser.add_argument("--benchmark", action="store_true", help="img/s per format at --batch-size")


def run(args: argparse.Namespace, settings: Settings) -> int:
    from harclip.errors import ModelError

    if args.batch_size < 1:
        raise ModelError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.calibration is not None and "int8" not in args.formats:
        raise ModelError("--calibration calibrates INT8: add int8 to --format")
    console = Console(stderr=True)
    model = args.model or settings.model.hf_model
    with _step(console, f"load {model}"):
        from harclip.clip.export import ExportOptions, export_bundle, update_manifest
        from harclip.clip.load import load_clip
        from harclip.model.relabel import load_label_set

        clip = load_clip(model)
    options = ExportOptions(
        formats=tuple(dict.fromkeys(["onnx", *args.formats])),
        precision=args.precision,
        batch_size=args.batch_size,
        label_set=load_label_set(args.labels) if args.labels else None,
        name=args.name,
        version=args.version,
        per_channel=args.per_channel,
        calibration=args.calibration,
        calibration_images=args.calibration_images,
    )
    bundle = export_bundle(clip, args.output, options, step=lambda t: _step(console, t))
    out = Console()
    if args.validate:
        from harclip.clip.validate import validate_bundle, validation_table

        with _step(console, "validate every engine against PyTorch"):
            report = validate_bundle(bundle, clip, settings)
        update_manifest(bundle, validation=report)
        out.print(validation_table(report))
    if args.benchmark:
        from harclip.clip.validate import benchmark_bundle

        with _step(console, f"benchmark at batch {args.batch_size}"):
            bench = benchmark_bundle(bundle, clip, settings, args.batch_size)
        update_manifest(bundle, metrics=bundle.manifest.metrics | {"benchmark": bench})
        out.print(_bench_table(bench, args.batch_size))
    int8 = bundle.manifest.metrics.get("int8", {})
    if "static" in int8:
        out.print(_int8_table(int8))
    engines = ", ".join(bundle.engine_names)
    console.print(f"[green]bundle written to {bundle.path}[/] (engines: {engines})")
    return 0


@contextmanager
def _step(console: Console, title: str) -> Iterator[None]:
    """A spinner while the step runs, then a tick with its duration (or a cross)."""
    start = time.perf_counter()
    try:
        with console.status(f"{title} ..."):
            yield
    except BaseException:
        console.print(f"[red]✗[/] {title}")
        raise
    console.print(f"[green]✓[/] {title} [dim]({time.perf_counter() - start:.1f} s)[/]")


def _int8_table(int8: dict[str, Any]) -> Table:
    check = int8["check"]
    t = Table(title=f"INT8 candidates vs PyTorch on {check['images']} {check['source']}; "
                    f"kept: {int8['kept']} ({int8['why']})")  # fmt: skip
    cols = ("INT8", f"img/s (b{check['batch']})", "min cosine", "top-1 agreement", "error bound",
            "decisive: agree")  # fmt: skip
    for col in cols:
        t.add_column(col, justify="left" if col == "INT8" else "right")
    for kind in ("dynamic", "static"):
        row = int8[kind]
        t.add_row(kind, f"{row['img_per_s']:.1f}", f"{row['min_cosine']:.6f}",
                  f"{100 * row['top1_agreement']:.1f} %", f"{row['error_bound']:.3g}",
                  f"{row['decisive_images']}: {100 * row['decisive_agreement']:.1f} %")  # fmt: skip
    return t


def _bench_table(bench: dict[str, dict[str, float]], batch: int) -> Table:
    t = Table(title=f"benchmark, batch {batch}")
    for col in ("format", "img/s", "ms/batch"):
        t.add_column(col, justify="right" if col != "format" else "left")
    for name, row in bench.items():
        t.add_row(name, f"{row['img_per_s']:.1f}", f"{row['ms_per_batch']:.1f}")
    return t
