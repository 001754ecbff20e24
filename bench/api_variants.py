"""The API's serving settings compared in one run: each variant's `python -m api` is started in
turn, round after round, and loaded at c1 (max batch 1) and c16 (max batch 16) by the light
client of `bench.api` (or httpx, for the client variant).

    python -m bench.api_variants [--rounds 2] [--requests 64] [--bundle B] [--data DIR]

Variants: `before` (ONNX Runtime's intra-op threads spinning, every upload decoded in the pool:
the API before issue 25), `spin-off` (threads sleep when idle), `after` (the defaults: threads
sleep, a lone small upload decoded on the event loop), and `after-httpx` (the defaults loaded by
httpx, as `bench.api` did before, to show what the client costs on the shared cores). Per
variant and level: req/s, p50 ms, and CPU ms per request of the API process and of the client,
medians over the rounds; the machine is shared, so compare variants of one run only. The last
stdout line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bench import harness
from bench.api import build_bundle, load
from harclip.config import Settings, load_settings

console = Console(stderr=True)
VARIANTS: dict[str, tuple[dict[str, dict[str, Any]], str]] = {
    "before": ({"model": {"intra_op_spinning": True}, "api": {"inline_decode_pixels": 0}}, "raw"),
    "spin-off": (
        {"model": {"intra_op_spinning": False}, "api": {"inline_decode_pixels": 0}},
        "raw",
    ),
    "after": ({}, "raw"),
    "after-httpx": ({}, "httpx"),
}
LEVELS = (("c1", 1, 1), ("c16", 16, 16))  # name, concurrency, max batch


def settings_for(base: Settings, updates: dict[str, dict[str, Any]], max_batch: int) -> Settings:
    """`base` with a variant's section updates, batching `max_batch`, no control follower."""
    sections: dict[str, Any] = {
        "batching": base.batching.model_copy(update={"max_batch": max_batch}),
        "api": base.api.model_copy(update={"follow_control": False, **updates.get("api", {})}),
        "model": base.model.model_copy(update=updates.get("model", {})),
        "log_level": "WARNING",
    }
    return base.model_copy(update=sections)


def run_level(bundle: Path, photos: Sequence[bytes], variant: str, level: tuple[str, int, int],
              n: int) -> dict[str, float]:  # fmt: skip
    updates, client = VARIANTS[variant]
    _, c, max_batch = level
    settings = settings_for(load_settings(), updates, max_batch)
    proc, url = harness.start_api(settings, bundle, ready="/health")
    try:
        stats, _ = asyncio.run(load(url, photos, c, max(n, 4 * c), client, proc.pid))
    finally:
        proc.stop()
    return stats


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.api_variants",
                                description=__doc__.splitlines()[0])  # fmt: skip
    p.add_argument("--bundle", type=Path, help="default: build state/bench/vit-b-32-bundle")
    p.add_argument("--data", type=Path, help="sample data folder (default: HARCLIP_SAMPLE_DATA)")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--requests", type=int, default=64, help="requests per level (at least 4x c)")
    p.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    args = p.parse_args(argv)
    if args.rounds < 1 or args.requests < 1:
        harness.fail("--rounds and --requests must be >= 1")
    bundle = args.bundle or build_bundle(harness.ROOT / "state" / "bench" / "vit-b-32-bundle")
    photos = [f.read_bytes() for f in harness.sample_photos(args.data)[:64]]
    runs: dict[str, dict[str, list[dict[str, float]]]] = {
        v: {lv[0]: [] for lv in LEVELS} for v in args.variants
    }
    for r in range(args.rounds):
        for level in LEVELS:
            for v in args.variants:  # alternated: each round runs every variant once per level
                s = run_level(bundle, photos, v, level, args.requests)
                runs[v][level[0]].append(s)
                console.log(f"round {r + 1} {v} {level[0]}: {s['rps']:.1f} req/s, p50 "
                            f"{s['p50_ms']:.1f} ms, server CPU "
                            f"{s['server_cpu_ms_per_request']:.1f} ms/req")  # fmt: skip
    result = {v: {lv: _median(rs) for lv, rs in levels.items()} for v, levels in runs.items()}
    t = Table(title=f"API variants, medians of {args.rounds} alternated rounds")
    for col in ("variant", "level", "req/s", "p50 ms", "server CPU ms/req", "client CPU ms/req"):
        t.add_column(col)
    for v, levels in result.items():
        for lv, s in levels.items():
            t.add_row(v, lv, f"{s['rps']:.1f}", f"{s['p50_ms']:.1f}",
                      f"{s['server_cpu_ms_per_request']:.2f}",
                      f"{s['client_cpu_ms_per_request']:.2f}")  # fmt: skip
    Console().print(t)
    print(json.dumps({"rounds": args.rounds, "variants": result, "runs": runs}), flush=True)
    return 0


def _median(rows: list[dict[str, float]]) -> dict[str, float]:
    return {k: round(statistics.median(r[k] for r in rows), 3) for k in rows[0]}


if __name__ == "__main__":
    sys.exit(main())
