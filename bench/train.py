"""Training throughput and memory: images/s of one optimizer step after another for one process,
DDP and FSDP (2 processes, gloo on CPU / nccl on GPU), on the cpu-small preset's CLIP and on the
ViT-B/32 shape (random weights), with the training package's own model, optimizer (AdamW +
LLRD groups) and wrapping; and the peak memory per rank of DDP against FSDP.

    python -m bench.train [--steps 4] [--vit-batch 8] [--small-batch 64]

Images are generated uint8 224×224 batches (data loading is not measured: it runs in DataLoader
workers beside the step). Memory per rank, on CPU: the peak resident set during the warm-up and
timed steps (the high-water mark is reset once the model is built and wrapped, so the one-time
full load every rank does before FSDP shards it is not counted) minus the resident set once
torch and transformers are imported (the libraries are not counted; weights, gradients,
optimizer state, communication buffers and activations are). The text tower is dropped before
the steps, as it is not trained. On CUDA: `torch.cuda.max_memory_allocated` over the steps.
Each variant runs in fresh processes. Prints a table; the
last stdout line is one JSON object (`fsdp_vs_ddp_peak_mem`: FSDP ÷ DDP on ViT-B/32, goal
≤ 0.65).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
STRATEGIES = ("single", "ddp", "fsdp")


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--model-dir", type=Path, default=Path("state/bench/vit-b-32-random"))
    p.add_argument("--steps", type=int, default=4, help="timed steps per variant")
    p.add_argument("--vit-batch", type=int, default=8, help="global batch, ViT-B/32")
    p.add_argument("--small-batch", type=int, default=64, help="global batch, cpu-small")
    p.add_argument("--archs", nargs="+", default=["cpu-small", "vit-b-32"])
    p.add_argument("--strategies", nargs="+", default=list(STRATEGIES), choices=STRATEGIES)
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--arch", default="cpu-small", help=argparse.SUPPRESS)
    p.add_argument("--strategy", default="single", help=argparse.SUPPRESS)
    p.add_argument("--batch", type=int, default=8, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _reset_peak_rss() -> None:
    """Hand freed heap memory back to the kernel, then reset its resident high-water mark
    (VmHWM) to the current resident set."""
    import ctypes

    ctypes.CDLL("libc.so.6").malloc_trim(0)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def _peak_rss_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _worker(args: argparse.Namespace) -> None:
    """One rank: build, wrap, time `steps` optimizer steps; rank 0 prints one JSON line."""
    import numpy as np
    import torch
    import transformers  # noqa: F401  (imported before the baseline is taken)
    from torch import nn

    from harclip.clip.load import load_clip
    from training.config import ScratchArch
    from training.fit.distributed import setup, teardown, wrap
    from training.fit.optim import make_optimizer
    from training.model.classifier import ClipClassifier, write_scratch_model

    d = setup(args.strategy, "auto", 0)
    baseline = _rss_bytes()
    if args.arch == "cpu-small":
        folder = ROOT / "state" / "bench" / "cpu-small-random"
        if d.is_main and not (folder / "config.json").is_file():
            write_scratch_model(ScratchArch(), folder, 0)
        d.barrier()
    else:
        folder = args.model_dir
    clip = load_clip(folder)
    rng = np.random.default_rng(0)
    head = rng.normal(0, 0.02, (clip.embed_dim, 15)).astype(np.float32)
    model = ClipClassifier(clip, head, np.zeros(15, np.float32), 10.0)
    del clip  # the text tower is not trained
    gc.collect()
    n_layers = model.num_layers
    model = wrap(model, d, None)
    opt = make_optimizer(model, n_layers, lr=1e-5, head_lr=1e-4, llrd=0.75, weight_decay=0.1)
    micro = args.batch // d.world
    images = torch.from_numpy(rng.integers(0, 256, (micro, 224, 224, 3), dtype=np.uint8))
    labels = torch.from_numpy(rng.integers(0, 15, micro)).to(d.device)
    images = images.to(d.device)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        loss = nn.functional.cross_entropy(model(images), labels)
        loss.backward()  # type: ignore[no-untyped-call]
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()

    gc.collect()
    if d.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(d.device)
    else:
        _reset_peak_rss()
    step()  # warm-up
    if d.device.type == "cuda":
        torch.cuda.synchronize()
    d.barrier()
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    if d.device.type == "cuda":
        torch.cuda.synchronize()
    d.barrier()
    seconds = time.perf_counter() - start
    if d.device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(d.device)
    else:
        peak = _peak_rss_bytes() - baseline
    peaks = [peak]
    if d.distributed:
        import torch.distributed as dist

        box: list[Any] = [None] * d.world
        dist.all_gather_object(box, peak)
        peaks = [int(x) for x in box]
    if d.is_main:
        print(json.dumps({
            "arch": args.arch, "strategy": args.strategy, "world": d.world,
            "device": str(d.device), "batch": args.batch, "steps": args.steps,
            "img_per_s": args.batch * args.steps / seconds,
            "s_per_step": seconds / args.steps,
            "peak_mem_per_rank_mib": [p / 2**20 for p in peaks],
        }))  # fmt: skip
    teardown(d)


def _run(arch: str, strategy: str, batch: int, steps: int, model_dir: Path) -> dict[str, Any]:
    """One variant in fresh processes (torchrun with 2 processes for ddp / fsdp)."""
    me = [str(Path(__file__).resolve()), "--worker", "--arch", arch, "--strategy", strategy,
          "--batch", str(batch), "--steps", str(steps), "--model-dir", str(model_dir)]  # fmt: skip
    if strategy == "single":
        cmd = [sys.executable, *me]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc-per-node=2", *me]  # fmt: skip
    # glibc: large blocks always mmap'ed, so freed tensors leave the resident set at once and the
    # peak resident set follows the live tensors (else the heap keeps what FSDP freed)
    env = dict(os.environ, PYTHONPATH=str(ROOT), MALLOC_MMAP_THRESHOLD_="65536")
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{arch}/{strategy} failed:\n{proc.stderr[-3000:]}")
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")][-1]
    result: dict[str, Any] = json.loads(line)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    if args.worker:
        _worker(args)
        return 0
    if not (args.model_dir / "config.json").is_file():
        from harclip.clip.init import init_model

        init_model(args.model_dir, "vit-b-32")
    rows = []
    batches = {"cpu-small": args.small_batch, "vit-b-32": args.vit_batch}
    for arch in args.archs:
        batch = batches[arch]
        for strategy in args.strategies:
            rows.append(_run(arch, strategy, batch, args.steps, args.model_dir))
            r = rows[-1]
            print(f"  {arch:<9} {strategy:<6} done: {r['img_per_s']:.1f} img/s", file=sys.stderr)
    print(f"{'model':<10} {'strategy':<8} {'ranks':>5} {'batch':>5} {'img/s':>8} "
          f"{'s/step':>7} {'peak MiB per rank':>18}")  # fmt: skip
    for r in rows:
        mem = "/".join(f"{m:.0f}" for m in r["peak_mem_per_rank_mib"])
        print(f"{r['arch']:<10} {r['strategy']:<8} {r['world']:>5} {r['batch']:>5} "
              f"{r['img_per_s']:>8.1f} {r['s_per_step']:>7.2f} {mem:>18}")  # fmt: skip
    by = {(r["arch"], r["strategy"]): r for r in rows}

    def mem(arch: str, s: str) -> float:
        return max(by[(arch, s)]["peak_mem_per_rank_mib"])

    arch = "vit-b-32" if "vit-b-32" in args.archs else args.archs[0]
    summary = {
        "device": rows[0]["device"],
        "load_average": round(os.getloadavg()[0], 1),
        "img_per_s": {f"{a}/{s}": round(by[(a, s)]["img_per_s"], 2) for a, s in by},
        "peak_mem_per_rank_mib": {f"{a}/{s}": round(mem(a, s), 1) for a, s in by},
        "fsdp_vs_ddp_peak_mem": round(mem(arch, "fsdp") / mem(arch, "ddp"), 3),
        "fsdp_vs_ddp_peak_mem_goal": 0.65,
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
