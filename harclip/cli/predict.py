"""`harclip predict [--bundle B | --model M] [--engine E] [--top-k K] [--json] IMAGE...`

Predicts the action in image files and folders (recursively) with a model bundle. A file that
cannot be read or decoded gets an error line naming it while the others are still predicted; the
exit status is 1 if any file failed.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

from harclip.argtypes import POSITIVE
from harclip.config import EngineChoice, Settings
from harclip.engines import ENGINE_CHOICES
from harclip.errors import ConfigError
from harclip.model.imageio import iter_image_paths

if TYPE_CHECKING:
    from harclip.engines import Engine
    from harclip.model.bundle import Bundle
    from harclip.model.head import Head


@dataclass(frozen=True, slots=True)
class Result:
    """One input file's outcome: its top-k (label, probability) or the reason it failed."""

    path: Path
    top_k: list[tuple[str, float]] | None = None
    error: str | None = None

    def to_json(self) -> dict[str, object]:
        if self.top_k is None:
            return {"path": str(self.path), "error": self.error}
        label, score = self.top_k[0]
        return {
            "path": str(self.path),
            "label": label,
            "score": round(score, 6),
            "top_k": [{"label": lb, "score": round(s, 6)} for lb, s in self.top_k],
        }


def configure(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--bundle", type=Path, help="model bundle (default: HARCLIP_MODEL__BUNDLE)")
    source.add_argument(
        "--model",
        help="Hugging Face id or local CLIP folder, exported to a temporary bundle (needs torch)",
    )
    parser.add_argument(
        "--engine",
        choices=ENGINE_CHOICES,
        help="default: HARCLIP_MODEL__ENGINE, else auto (the fastest engine the bundle validated)",
    )
    parser.add_argument("--top-k", type=POSITIVE, help="labels per image (default: settings)")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.add_argument("--batch-size", type=POSITIVE, default=16, help="images per engine call")
    parser.add_argument("images", nargs="+", type=Path, metavar="IMAGE", help="files or folders")


def run(args: argparse.Namespace, settings: Settings) -> int:
    from harclip.model.bundle import Bundle

    engine_name: EngineChoice = args.engine or settings.model.engine
    paths = list(iter_image_paths(args.images))
    if not paths:
        raise ConfigError(f"no image files found in {', '.join(map(str, args.images))}")
    out = _JsonOut() if args.json else _TableOut()
    failed = 0
    with _bundle_path(args, settings, engine_name) as bundle_path:
        bundle = Bundle.load(bundle_path)
        head = bundle.load_head()
        engine = _open_engine(bundle, engine_name, settings)
        k = min(args.top_k or settings.model.top_k, len(head.labels))
        try:
            with ThreadPoolExecutor(settings.batching.decode_threads) as pool:
                for start in range(0, len(paths), args.batch_size):
                    chunk = paths[start : start + args.batch_size]
                    for result in _predict(chunk, engine, head, k, settings, pool):
                        failed += result.error is not None
                        out.add(result)
        finally:
            engine.close()
    out.finish()
    return 1 if failed else 0


def _open_engine(bundle: Bundle, name: EngineChoice, settings: Settings) -> Engine:
    """The engine to predict with; for `auto`, one stderr line says which and why."""
    from harclip.engines import create_engine
    from harclip.engines.auto import open_auto

    if name != "auto":
        return create_engine(bundle, name, settings.model)
    engine, reason = open_auto(bundle, settings.model)
    print(f"engine {engine.label} (auto: {reason})", file=sys.stderr)
    return engine


def _predict(
    paths: Sequence[Path],
    engine: Engine,
    head: Head,
    k: int,
    settings: Settings,
    pool: ThreadPoolExecutor,
) -> list[Result]:
    """One batch: read, decode, embed the decodable images, top-k; a Result per path, in order."""
    from harclip.model.preprocess import preprocess_batch

    datas: list[bytes] = []
    errors: dict[int, str] = {}
    for i, path in enumerate(paths):
        try:
            datas.append(path.read_bytes())
        except OSError as e:
            errors[i] = f"cannot read file: {e.strerror or e}"
            datas.append(b"")
    pixels, decode_errors = preprocess_batch(
        datas, engine.image_size, max_pixels=settings.model.max_pixels, pool=pool
    )
    for i, err in enumerate(decode_errors):
        if err is not None and i not in errors:
            errors[i] = str(err)
    ok = [i for i in range(len(paths)) if i not in errors]
    tops = head.top_k(engine.embed(pixels[ok]), k) if ok else []
    by_index = dict(zip(ok, tops, strict=True))
    return [
        Result(p, top_k=by_index[i]) if i in by_index else Result(p, error=errors[i])
        for i, p in enumerate(paths)
    ]


@contextmanager
def _bundle_path(
    args: argparse.Namespace, settings: Settings, engine: EngineChoice
) -> Iterator[Path]:
    if args.bundle is not None:
        yield args.bundle
    elif args.model is not None:
        with tempfile.TemporaryDirectory(prefix="harclip-predict-") as tmp:
            yield _export_temporary(args.model, Path(tmp) / "bundle", engine, settings)
    elif settings.model.bundle is not None:
        yield settings.model.bundle
    else:
        raise ConfigError("no model: pass --bundle B or --model M, or set HARCLIP_MODEL__BUNDLE")


_FORMATS_FOR_ENGINE: dict[str, tuple[str, ...]] = {
    "auto": ("onnx",),  # a temporary bundle is not validated, so auto would not serve INT8
    "onnx": ("onnx",),
    "onnx-int8": ("onnx", "int8"),
    "torchscript": ("onnx", "torchscript"),
    "torch": ("onnx", "torch"),
    "tensorrt": ("onnx", "tensorrt"),
}


def _export_temporary(model: str, out: Path, engine: EngineChoice, settings: Settings) -> Path:
    """Export `model` (hub id or folder) with what `engine` needs; torch and transformers needed."""
    from harclip.clip.export import ExportOptions, export_bundle
    from harclip.clip.load import load_clip

    print(f"exporting {model} to a temporary bundle for engine {engine} ...", file=sys.stderr)
    options = ExportOptions(
        formats=_FORMATS_FOR_ENGINE[engine],  # type: ignore[arg-type]
        precision=settings.model.tensorrt_precision,
    )
    return export_bundle(load_clip(model), out, options).path


class _JsonOut:
    def add(self, result: Result) -> None:
        print(json.dumps(result.to_json()), flush=True)

    def finish(self) -> None:
        pass


class _TableOut:
    """Errors go to stderr as they happen; the predictions as one table at the end."""

    def __init__(self) -> None:
        self._results: list[Result] = []
        self._err = Console(stderr=True, highlight=False)

    def add(self, result: Result) -> None:
        if result.error is not None:
            self._err.print(f"harclip predict: error: {result.path}: {result.error}", markup=False)
        else:
            self._results.append(result)

    def finish(self) -> None:
        if not self._results:
            return
        table = Table()
        table.add_column("image", overflow="fold")
        table.add_column("label")
        table.add_column("score", justify="right")
        table.add_column("next", overflow="fold")
        for r in self._results:
            assert r.top_k is not None
            (label, score), rest = r.top_k[0], r.top_k[1:]
            others = ", ".join(f"{lb} {s:.3f}" for lb, s in rest)
            table.add_row(str(r.path), label, f"{score:.3f}", others)
        Console(highlight=False).print(table)
