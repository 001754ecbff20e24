"""fp32 ONNX Runtime vs PyTorch eager at one batch, ViT-B/32 random: ONNX Runtime's graph
optimisation level and thread count, torch's thread count, and ONNX Runtime after torch ran in
the same process; each variant in a fresh process, the whole list `--rounds` times.

    python -m bench.engine_variants [--rounds 2] [--batch 8] [--seconds 6]

The model (init-model vit-b-32) and its fp32 export are made once under
state/bench/engine-variants/. Prints a table (img/s per variant and round) and the exported
graph's opset and op counts; the last stdout line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from bench import harness

DIR = harness.ROOT / "state" / "bench" / "engine-variants"


def _images(batch: int, size: int = 224) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (batch, size, size, 3), dtype=np.uint8)


def _timeit(fn: Callable[[np.ndarray], Any], x: np.ndarray, seconds: float) -> float:
    fn(x)
    fn(x)
    start, runs = time.perf_counter(), 0
    while runs < 3 or time.perf_counter() - start < seconds:
        fn(x)
        runs += 1
    return round(len(x) * runs / (time.perf_counter() - start), 2)


def ort_run(level: str, threads: int, batch: int, seconds: float, torch_first: bool) -> float:
    if torch_first:
        torch_run(2, batch, seconds)
    import onnxruntime as ort

    o = ort.SessionOptions()
    o.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
    o.intra_op_num_threads = threads
    o.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    path = str(DIR / "bundle" / "encoder.onnx")
    s = ort.InferenceSession(path, o, providers=["CPUExecutionProvider"])
    name = s.get_inputs()[0].name
    return _timeit(lambda x: s.run(None, {name: x}), _images(batch), seconds)


def torch_run(threads: int, batch: int, seconds: float) -> float:
    import torch

    from harclip.clip.load import load_clip
    from harclip.clip.validate import pytorch_embed

    if threads:
        torch.set_num_threads(threads)
    return _timeit(pytorch_embed(load_clip(DIR / "model")), _images(batch), seconds)


def build() -> None:
    if (DIR / "bundle" / "manifest.json").is_file():
        return
    from harclip.clip.export import ExportOptions, export_bundle
    from harclip.clip.init import init_model
    from harclip.clip.load import load_clip

    model = init_model(DIR / "model", "vit-b-32")
    export_bundle(load_clip(model), DIR / "bundle", ExportOptions(formats=("onnx",)))


def variants(batch: int, seconds: float) -> dict[str, tuple[Callable[..., float], tuple[Any, ...]]]:
    b, s = batch, seconds
    return {
        "ort ALL, 2 threads (the engine's settings)": (ort_run, ("ORT_ENABLE_ALL", 2, b, s, False)),
        "ort ALL, threads 0 (ORT default)": (ort_run, ("ORT_ENABLE_ALL", 0, b, s, False)),
        "ort EXTENDED, 2 threads": (ort_run, ("ORT_ENABLE_EXTENDED", 2, b, s, False)),
        "ort BASIC, 2 threads": (ort_run, ("ORT_ENABLE_BASIC", 2, b, s, False)),
        "ort DISABLE_ALL, 2 threads": (ort_run, ("ORT_DISABLE_ALL", 2, b, s, False)),
        "torch eager, 2 threads (bench.engine)": (torch_run, (2, b, s)),
        "torch eager, default threads": (torch_run, (0, b, s)),
        "ort ALL, 2 threads, after torch in-process": (ort_run, ("ORT_ENABLE_ALL", 2, b, s, True)),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.engine_variants",
                                description=__doc__.splitlines()[0])  # fmt: skip
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seconds", type=float, default=6.0)
    args = p.parse_args(argv)
    if args.rounds < 1 or args.batch < 1 or args.seconds <= 0:
        harness.fail("--rounds and --batch must be >= 1, --seconds > 0")
    build()
    ctx = multiprocessing.get_context("spawn")
    runs: dict[str, list[float]] = {}
    for _ in range(args.rounds):
        for name, (fn, fargs) in variants(args.batch, args.seconds).items():
            with ctx.Pool(1) as pool:
                runs.setdefault(name, []).append(pool.apply(fn, fargs))
            Console(stderr=True).log(f"{name}: {runs[name][-1]} img/s")
    import onnx

    graph = onnx.load(str(DIR / "bundle" / "encoder.onnx"), load_external_data=False)
    ops = Counter(n.op_type for n in graph.graph.node)
    t = Table(title=f"fp32 img/s at batch {args.batch}, each variant in a fresh process")
    t.add_column("variant")
    for r in range(args.rounds):
        t.add_column(f"round {r + 1}", justify="right")
    for name, values in runs.items():
        t.add_row(name, *(f"{v:.2f}" for v in values))
    Console().print(t)
    result = {
        "batch": args.batch,
        "img_per_s": runs,
        "opset": [o.version for o in graph.opset_import],
        "nodes": len(graph.graph.node),
        "ops": dict(ops.most_common()),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
