"""What watches cost the worker: frames/s of its batch step (engine -> head -> watch scoring ->
Predictions, `consumers.inference.run_batch`, the code the worker runs) with 0, 10, 100 and 1,000
watches, on the same decoded sample photos, rounds interleaved so that a loaded machine slows
every count alike.

    python -m bench.watches [--arch vit-b-32|tiny] [--engine onnx-int8] [--rounds 15]

The model is a random CLIP of --arch (ViT-B/32-shaped by default: 512-d embeddings), made once
into state/bench-watches-<arch>-bundle with ONNX fp32 and (dynamic) INT8. Watches are random
unit vectors; most compete with the shared default negatives, every fourth with one of its own;
`--window N` gives every watch a window of N frames. Frames come from 8 streams, every watch
applies to every stream. `throughput_ratio_<n>` is frames/s with n watches ÷ with none (median
of the rounds); `scoring_ms_<n>` the median time of `WatchScorer.score` alone per batch. If
bench/watch_alarms.py exists (the events side: calibrated false alarms), its `measure()` figures
join the JSON. The last stdout line is one JSON object.
"""

from __future__ import annotations

import argparse
import importlib
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from aiokafka.structs import TopicPartition
from rich.console import Console
from rich.table import Table

from bench import harness
from consumers.inference import run_batch
from consumers.work import LIVE, Work
from harclip.batching import Batch
from harclip.config import ModelSettings
from harclip.control import HeadInUse
from harclip.engines import create_engine
from harclip.messages import Frame, ModelRef, new_frame_id, now_ms
from harclip.model.bundle import Bundle
from harclip.model.preprocess import decode_image
from harclip.watches import Watch, WatchSet, WatchSpec
from harclip.watches.scoring import WatchScorer

console = Console(stderr=True)
COUNTS = (0, 10, 100, 1000)
STREAMS = 8


def ensure_bundle(arch: str) -> Path:
    """The bench's bundle of a random `arch` CLIP (ONNX fp32 + dynamic INT8), made once."""
    path = harness.ROOT / "state" / f"bench-watches-{arch}-bundle"
    if (path / "manifest.json").is_file():
        return path
    from harclip.clip.export import ExportOptions, export_bundle
    from harclip.clip.init import init_model
    from harclip.clip.load import load_clip

    model = path.with_name(path.name.replace("bundle", "model"))
    if not (model / "config.json").is_file():
        init_model(model, arch)  # type: ignore[arg-type]
    console.print(f"exporting {arch} to {path} (once)")
    return export_bundle(load_clip(model), path, ExportOptions(formats=("onnx", "int8"))).path


def watch_set(n: int, dim: int, window: int, seed: int = 0) -> WatchSet:
    rng = np.random.default_rng(seed)

    def unit(k: int) -> list[list[float]]:
        v = rng.standard_normal((k, dim)).astype(np.float32)
        return (v / np.linalg.norm(v, axis=1, keepdims=True)).tolist()  # type: ignore[no-any-return]

    shared = unit(2)  # the default negatives every watch without its own shares
    watches = [
        Watch(spec=WatchSpec(name=f"w{i}", prompts=["p"], window=window), version=1,
              positive=unit(1)[0], negatives=unit(1) if i % 4 == 3 else shared)
        for i in range(n)
    ]  # fmt: skip
    return WatchSet(version=1, embed_dim=dim, watches=watches)


def _works(pixels: list[np.ndarray]) -> list[Work]:
    out = []
    for i, px in enumerate(pixels):
        f = Frame(new_frame_id(), f"cam-{i % STREAMS}", i, now_ms(), b"")
        w = Work(TopicPartition("bench", 0), i, None, None, [], LIVE, 0.0, frame=f)
        w.pixels = px
        out.append(w)
    return out


def measure_counts(args: argparse.Namespace) -> dict[str, Any]:
    bundle = Bundle.load(ensure_bundle(args.arch))
    m = bundle.manifest
    engine = create_engine(bundle, args.engine, ModelSettings(intra_op_threads=args.threads))
    photos = harness.sample_photos(args.data)[:: max(1, 600 // args.batch)][: args.batch]
    pixels = [decode_image(p.read_bytes(), m.image_size, max_pixels=10**8) for p in photos]
    head = bundle.load_head()
    in_use = HeadInUse(head, ModelRef(name=m.name, version=str(m.version), head_version=1))
    scorers = {n: WatchScorer(watch_set(n, m.embed_dim, args.window), head.logit_scale)
               for n in COUNTS}  # fmt: skip
    step: dict[int, list[float]] = {n: [] for n in COUNTS}
    alone: dict[int, list[float]] = {n: [] for n in COUNTS}
    emb = engine.embed(np.stack(pixels))  # warm-up, and the embeddings scored alone
    streams = [f"cam-{i % STREAMS}" for i in range(len(pixels))]
    for _ in range(args.rounds):
        for n, scorer in scorers.items():
            works = _works(pixels)
            t = time.perf_counter()
            result = run_batch(Batch(items=works), engine, in_use, args.top_k, scorer)
            step[n].append(time.perf_counter() - t)
            assert len(result.predicted) == len(pixels), result.failed[:1]
            t = time.perf_counter()
            scorer.score(emb, streams)
            alone[n].append(time.perf_counter() - t)
    engine.close()
    fps = {n: len(pixels) / float(np.median(step[n])) for n in COUNTS}
    out: dict[str, Any] = {
        "arch": args.arch, "engine": engine.label, "embed_dim": m.embed_dim,
        "batch": len(pixels), "rounds": args.rounds, "window": args.window,
    }  # fmt: skip
    for n in COUNTS:
        out[f"fps_{n}"] = round(fps[n], 2)
        out[f"scoring_ms_{n}"] = round(float(np.median(alone[n])) * 1000, 3)
        if n:
            out[f"throughput_ratio_{n}"] = round(fps[n] / fps[0], 4)
            # the ratio the scoring time alone implies (less noisy on a loaded machine)
            step_ms = 1000 * len(pixels) / fps[0]
            out[f"scoring_ratio_{n}"] = round(step_ms / (step_ms + out[f"scoring_ms_{n}"]), 4)
    return out


def _alarms() -> dict[str, Any]:
    try:
        mod = importlib.import_module("bench.watch_alarms")
    except ModuleNotFoundError as e:
        if e.name == "bench.watch_alarms":
            return {}
        raise
    found: dict[str, Any] = mod.measure()
    return found


def _table(fig: dict[str, Any]) -> Table:
    t = Table(title=f"worker batch step, {fig['arch']} {fig['engine']}, batch {fig['batch']}")
    for col in ("watches", "frames/s", "÷ none", "scoring ms/batch", "implied ratio"):
        t.add_column(col, justify="right")
    for n in COUNTS:
        ratio = f"{fig[f'throughput_ratio_{n}']:.4f}" if n else "1"
        implied = f"{fig[f'scoring_ratio_{n}']:.4f}" if n else "1"
        t.add_row(str(n), f"{fig[f'fps_{n}']:.1f}", ratio, f"{fig[f'scoring_ms_{n}']:.3f}",
                  implied)  # fmt: skip
    return t


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--arch", choices=("vit-b-32", "tiny"), default="vit-b-32")
    p.add_argument("--engine", default="onnx-int8", help="onnx, onnx-int8, ...")
    p.add_argument("--batch", type=int, default=16, help="frames per batch (the worker's 16)")
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--top-k", type=int, default=5)
    p.add_argument("--window", type=int, default=1, help="every watch's window, frames")
    p.add_argument("--data", type=Path, help="sample data (default HARCLIP_SAMPLE_DATA)")
    p.add_argument("--no-alarms", action="store_true", help="skip bench/watch_alarms.py")
    args = p.parse_args(argv)
    fig = measure_counts(args)
    console.print(_table(fig))
    if not args.no_alarms:
        fig |= _alarms()
    print(json.dumps(fig))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
