"""The report of `bench.stream`: its tables and the helpers they need."""

from __future__ import annotations

import contextlib
import pstats
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table


def quantile_ms(buckets: dict[float, float], q: float) -> float | None:
    """Upper bound (ms) of the histogram bucket holding quantile `q` (cumulative counts)."""
    total = buckets.get(float("inf"), 0.0)
    if total <= 0:
        return None
    for le in sorted(buckets):
        if buckets[le] >= q * total:
            return le * 1000
    return None


def top_functions(path: Path, n: int = 15) -> list[tuple[str, float, float]]:
    st = pstats.Stats(str(path))
    rows = []
    for (file, line, fn), (_cc, _nc, tt, ct, _callers) in st.stats.items():  # type: ignore[attr-defined]
        rows.append((f"{Path(file).name}:{line}:{fn}", tt, ct))
    rows.sort(key=lambda r: -r[1])
    return rows[:n]


def print_report(result: dict[str, Any], streams: int, profile: Path | None) -> None:
    t = Table(title=f"events app, one worker, {streams} streams ({result['machine']})")
    for col in ("metric", "value", "goal"):
        t.add_column(col)
    t.add_row("throughput (predictions/s)", f"{result['events_throughput']:,.0f}", ">= 2,000")
    t.add_row("  app CPU per prediction (us) / per app CPU-second",
              f"{result['app_cpu_us_per_prediction']:.0f} / "
              f"{result['throughput_per_app_cpu_s']:,.0f}", "")  # fmt: skip
    t.add_row("  machine load average (1 min)", f"{result['load_average']}", "")
    t.add_row(f"prediction -> segment.start p50 / p99 at {result['latency_rate']:,.0f}/s (ms)",
              f"{result['p50_event_ms']:.0f} / {result['p99_event_ms']:.0f}",
              f"p99 <= {result['goal_p99_event_ms']}")  # fmt: skip
    t.add_row("confirming prediction -> segment.start p50 / p99 (ms)",
              f"{result['p50_confirm_ms']:.0f} / {result['p99_confirm_ms']:.0f}", "")  # fmt: skip
    t.add_row("  app lag: record timestamp -> applied, p50 / p99 (ms, bucket bound)",
              f"{result['p50_app_lag_ms']} / {result['p99_app_lag_ms']}", "")  # fmt: skip
    t.add_row("segment starts measured", str(result["segment_starts_measured"]), "")
    t.add_row(f"  full (gen 2) gc during latency: count / total ms (gc_freeze "
              f"{result['gc_freeze']})", f"{result['latency_gc_gen2']} / "
              f"{result['latency_gc_gen2_ms']:.0f}", "")  # fmt: skip
    Console().print(t)
    if profile:
        with contextlib.suppress(OSError, TypeError):
            p = Table(title=f"app profile (cProfile, top by own time): {profile}")
            for col in ("function", "own s", "cumulative s"):
                p.add_column(col)
            for name, tt, ct in top_functions(profile):
                p.add_row(name, f"{tt:.2f}", f"{ct:.2f}")
            Console().print(p)
