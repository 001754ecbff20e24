"""Watch false alarms, offline (no services): the events app's calibration and firing code
(`harclip.watches.calibration`, `harclip.watches.firing`) on the sample photos played as camera
streams, at the calibrated per-camera threshold and at the raw absolute one
(`harclip.watches.evaluate`; `harclip watch eval` is the same with a command line).

    python -m bench.watch_alarms [--data DIR] [--minutes 30] [--per-class 40] [--fps 5]
                                 [--target-per-hour 10] [--bundle BUNDLE]

Each of the 15 classes of `$HARCLIP_SAMPLE_DATA/har-sample` is one camera; a watch's target class
appears on the others as scripted 6 s episodes every 10 minutes, and the rest is background.
Without `--bundle` the model is a randomly initialised tiny CLIP (as the tests build it): its
precision and recall say nothing about CLIP, but every class-camera has its own score level (a
drift between cameras), which is what the calibration is for, and the false alarms per hour on
the background are measured against the target. `measure()` returns the figures (the watches
benchmark merges them); the last stdout line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console

from harclip.config import Settings
from harclip.watches.evaluate import Play, evaluate, table


def measure(
    *,
    data: Path | None = None,
    minutes: float = 30.0,
    per_class: int | None = 20,
    fps: float = 5.0,
    target_per_hour: float = 10.0,
    bundle: Path | None = None,
    seed: int = 0,
    jitter: float = Play.jitter,
) -> dict[str, Any]:
    """The figures: `false_alarms_per_hour` (calibrated, on background streams),
    `target_per_hour`, `raw_false_alarms_per_hour`, precision/recall of both, per watch."""
    if data is None:
        data = Path(os.environ.get("HARCLIP_SAMPLE_DATA", "data")) / "har-sample"
    started = time.perf_counter()
    result = evaluate(data, Settings(), bundle=bundle, target_per_hour=target_per_hour,
                      play=Play(fps=fps, minutes=minutes, seed=seed, jitter=jitter),
                      max_per_class=per_class)  # fmt: skip
    result["seconds"] = round(time.perf_counter() - started, 1)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.watch_alarms", description=__doc__)
    ap.add_argument("--data", type=Path)
    ap.add_argument("--minutes", type=float, default=30.0, help="capture time per camera")
    ap.add_argument("--per-class", type=int, default=20, help="photos per class (0: all)")
    ap.add_argument("--fps", type=float, default=5.0)
    ap.add_argument("--target-per-hour", type=float, default=10.0)
    ap.add_argument("--bundle", type=Path)
    ap.add_argument("--jitter", type=float, default=Play.jitter, help="per-frame score sd")
    args = ap.parse_args(argv)
    out = measure(data=args.data, minutes=args.minutes, per_class=args.per_class or None,
                  fps=args.fps, target_per_hour=args.target_per_hour,
                  bundle=args.bundle, jitter=args.jitter)  # fmt: skip
    Console().print(table(out), markup=False, highlight=False)
    figures = {k: v for k, v in out.items() if k not in ("watches", "play")}
    figures["jitter"] = args.jitter
    figures["per_watch"] = {
        r["watch"]: {
            "false_alarms_per_hour": round(r["calibrated"]["false_alarms_per_hour"], 3),
            "raw_false_alarms_per_hour": round(r["raw"]["false_alarms_per_hour"], 3),
            "baseline_spread": round(r["baseline_spread"], 4),
            "thresholds": [
                round(r["calibrated"]["threshold_min"], 3),
                round(r["calibrated"]["threshold_max"], 3),
            ],
            "streams_over_target": [
                r["calibrated"]["streams_over_target"],
                r["raw"]["streams_over_target"],
            ],
            "streams": r["streams"],
        }
        for r in out["watches"]
    }
    print(json.dumps(figures), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
