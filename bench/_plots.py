"""Plots for the benchmark scripts (matplotlib, Agg backend: no display needed).

The benchmarks import it as `from bench._plots import latency_histogram`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

_BINS = 40


def latency_histogram(
    samples_ms: dict[str, Sequence[float]], path: Path | str, title: str, unit: str = "frames"
) -> Path:
    """Write a PNG histogram of latencies (ms), one series per label, with p50/p99 lines.

    Series share the bins so their shapes compare; a series without samples shows in the legend
    as "no samples". The parent folder of `path` is created. Returns `path` as a Path.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    series = {k: np.asarray(v, dtype=float) for k, v in samples_ms.items()}
    every = np.concatenate([v for v in series.values() if v.size] or [np.zeros(0)])
    fig, ax = plt.subplots(figsize=(9, 5), layout="constrained")
    try:
        bins: int | list[float] = (
            np.histogram_bin_edges(every, bins=_BINS).tolist() if every.size else _BINS
        )
        for i, (label, v) in enumerate(series.items()):
            color, tag = f"C{i}", f"{label} " if len(series) > 1 else ""
            if not v.size:
                ax.plot([], [], color=color, label=f"{label}: no samples")
                continue
            p50, p99 = np.percentile(v, [50, 99])
            ax.hist(v, bins=bins, color=color, alpha=0.45, edgecolor=color,
                    label=f"{label} (n={v.size})")  # fmt: skip
            ax.axvline(p50, color=color, linestyle="--", label=f"{tag}p50 {p50:.0f} ms")
            ax.axvline(p99, color=color, linestyle=":", linewidth=2, label=f"{tag}p99 {p99:.0f} ms")
        if not every.size:
            ax.text(0.5, 0.5, "no samples", transform=ax.transAxes, ha="center", va="center")
        ax.set_xlabel("latency (ms)")
        ax.set_ylabel(unit)
        ax.set_title(title, fontsize=10)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=9)
        fig.savefig(out, dpi=120)
    finally:
        plt.close(fig)
    return out
