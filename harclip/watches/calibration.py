"""Per-camera calibration of a watch's threshold (the events app keeps one per (stream, watch)).

Raw CLIP scores drift between cameras (lighting, angle, what is usually in view), so one absolute
threshold fires all day on one camera and never on another. Instead each (stream, watch) keeps
the distribution of its *sustained* score on that camera's recent frames, and the threshold is
the upper quantile of it that gives the watch's target false-alarm rate on that camera:

- **sustained score** `s_t` = the lowest score of the frames in the last `min_duration_seconds`
  (capture time) — a firing needs the score above the threshold for that long, so `s_t ≥ x` is
  exactly "a firing at threshold x could happen now". Kept with a monotonic queue of scores
  (bounded: one entry per histogram bin at most).
- **distribution**: an exponentially decayed histogram of `s_t` over [0, 1] in `BINS` bins
  (half-life `HALF_LIFE_S` of capture time; lazy decay, O(1) per frame), stored sparsely.
- **frame rate**: a moving average of the interval between capture times (gaps over
  `MAX_GAP_MS` left out), so `frames_per_hour = 3.6e6 / interval_ms`.
- **threshold**: `q = 1 - false_alarms_per_hour · L / frames_per_hour`; the threshold is the
  `q`-quantile of `s_t` (linear inside a bin). `L` is how many frames one crossing of the
  threshold lasts on this camera (a moving average of the runs of samples at or above the
  calibrated threshold in force, the first ones counting fully; 1 before any; more when scenes
  last):
  the frames above the threshold are then about `false_alarms_per_hour · L` per hour, i.e.
  `false_alarms_per_hour` crossings, and each firing needs one (the cooldown removes more).
- **what it learns**: every frame, real events included (leaving the frames of open firings
  out makes the tail look lighter than the background's, and the rate overshoots: tried, 2x).
  So events that take more of the budget than the target rate allows raise the threshold: for
  the calibration, what happens more often than `false_alarms_per_hour` is the camera's normal.
- A target rarer than the history shows (fewer than `TAIL_FRAMES`
  decayed samples above it: with an hour's history at 5 fps, below ~10 per hour) extends the
  tail exponentially from the quantiles at `TAIL_FRAMES` and `10 · TAIL_FRAMES` samples (an
  exponential tail is heavier than the scores' usual ones, so this errs towards fewer alarms).
  Clamped to [`SCORE_FLOOR`, `MAX_THRESHOLD`].
- **calibrating**: until `MIN_FRAMES` sustained samples over at least `MIN_HISTORY_S` seconds of
  capture time are in, the camera is `calibrating` and the watch's absolute `threshold` is used.
  `pinned_threshold` overrides both (`pinned`).
- **hysteresis**: an open firing ends when the score falls below `low = median + HYSTERESIS ·
  (threshold − median)` (the camera's median sustained score; 0 before any history).

Everything is in capture time, so a replayed backlog gives the same thresholds. The state is
plain JSON (`to_json`/`from_json`): a few hundred numbers at most.
"""

from __future__ import annotations

import hashlib
import math
import struct
from dataclasses import dataclass, field
from typing import Any, Literal

from harclip.watches.spec import SCORE_FLOOR, Watch, WatchSpec

BINS = 200  # histogram bins over [0, 1] (0.005 wide)
HALF_LIFE_S = 3600.0  # the histogram's weight of a frame halves every hour of capture time
MIN_FRAMES = 300  # sustained samples before a camera is calibrated ...
MIN_HISTORY_S = 120.0  # ... spanning at least this much capture time
MAX_GAP_MS = 5000  # a longer gap between frames: not a frame interval, the running min restarts
HYSTERESIS = 0.5  # an open firing ends below median + HYSTERESIS * (threshold - median)
MAX_THRESHOLD = 0.999
REFRESH = 16  # the threshold and the median are computed again every this many samples
RUN_ALPHA = 0.05  # moving average of a crossing's length in frames
TAIL_FRAMES = 10  # a rarer target than this many samples of history: the tail is extrapolated
_RESCALE = 60.0  # rescale the lazy weights once they exceed 2**_RESCALE
_DT_ALPHA = 0.05  # moving average of the frame interval

Source = Literal["calibrated", "calibrating", "pinned"]


def _bin(score: float) -> int:
    return min(BINS - 1, max(0, int(score * BINS)))


def fingerprint(watch: Watch) -> str:
    """What the score distribution depends on (vectors, window, min duration): a calibration
    made under another fingerprint starts again."""
    h = hashlib.blake2b(digest_size=8)
    for v in (watch.positive, *watch.negatives):
        h.update(struct.pack(f"<{len(v)}f", *v))
    h.update(f"{watch.spec.window}|{watch.spec.min_duration_seconds}".encode())
    return h.hexdigest()


@dataclass(slots=True)
class Calibration:
    """The score distribution of one watch on one camera (see the module docstring)."""

    fingerprint: str = ""
    hist: dict[int, float] = field(default_factory=dict)  # bin -> weight · 2**((at-ref)/H)
    ref: int = 0  # capture time the lazy weights are relative to, ms
    samples: int = 0  # sustained samples taken
    first_at: int = -1  # capture time of the first sample, ms
    last_at: int = -1  # capture time of the newest frame, ms
    interval_ms: float = 0.0  # moving average of the frame interval (0: not known yet)
    queue: list[list[float]] = field(default_factory=list)  # [at, score], bins increasing
    since: int = -1  # capture time since which frames came without a gap, ms
    tail: float | None = None  # the calibrated threshold in force (set by the firing code)
    run: int = 0  # samples in a row at or above `tail`
    run_mean: float = 1.0  # moving average of the length of such runs (frames per crossing)
    runs: int = 0  # such runs seen
    cached: list[Any] = field(default_factory=list)  # [samples // REFRESH, target, threshold]
    median: list[Any] = field(default_factory=lambda: [-1, None])  # [samples // REFRESH, median]

    # ------------------------------------------------------------------ updates

    def add(self, score: float, at: int, min_duration_ms: float) -> None:
        """One frame's score at capture time `at` (ms); older frames than the newest are
        ignored."""
        if at < self.last_at:
            return
        gap = at - self.last_at if self.last_at >= 0 else None
        if gap is None or gap > MAX_GAP_MS:
            self.queue, self.since = [], at
        elif gap > 0:
            old = self.interval_ms
            self.interval_ms = gap if old <= 0 else old + _DT_ALPHA * (gap - old)
        self.last_at = at
        b = _bin(score)
        q = self.queue
        while q and _bin(q[-1][1]) >= b:
            q.pop()
        q.append([at, score])
        while q[0][0] < at - min_duration_ms:
            q.pop(0)
        if at - self.since >= min_duration_ms:
            self._sample(q[0][1], at)

    def _sample(self, sustained: float, at: int) -> None:
        if self.samples == 0:
            self.ref, self.first_at = at, at
        exponent = (at - self.ref) / (HALF_LIFE_S * 1000)
        if exponent > _RESCALE:
            scale = 2.0**-exponent
            self.hist = {b: w * scale for b, w in self.hist.items() if w * scale > 1e-12}
            self.ref, exponent = at, 0.0
        b = _bin(sustained)
        self.hist[b] = self.hist.get(b, 0.0) + 2.0**exponent
        self.samples += 1
        if self.tail is not None and sustained >= self.tail:
            self.run += 1
        elif self.run:
            self.runs += 1  # the first runs count fully (the prior 1 as one of them)
            self.run_mean += max(RUN_ALPHA, 1 / (self.runs + 1)) * (self.run - self.run_mean)
            self.run = 0

    # ------------------------------------------------------------------ reads

    @property
    def ready(self) -> bool:
        return self.samples >= MIN_FRAMES and (self.last_at - self.first_at) >= MIN_HISTORY_S * 1000

    @property
    def frames_per_hour(self) -> float | None:
        return 3.6e6 / self.interval_ms if self.interval_ms > 0 else None

    def effective_frames(self) -> float:
        """The decayed number of samples as of the newest frame."""
        if not self.hist:
            return 0.0
        decay: float = 2.0 ** (-(self.last_at - self.ref) / (HALF_LIFE_S * 1000))
        return sum(self.hist.values()) * decay

    def quantile(self, q: float) -> float | None:
        """The `q`-quantile of the sustained score (None without samples)."""
        total = sum(self.hist.values())
        if total <= 0:
            return None
        above = (1.0 - min(1.0, max(0.0, q))) * total  # weight wanted above the answer
        for b in sorted(self.hist, reverse=True):
            w = self.hist[b]
            if w >= above:
                return (b + 1 - above / w) / BINS  # linear inside the bin
            above -= w
        return min(self.hist) / BINS

    def calibrated_threshold(self, false_alarms_per_hour: float) -> float | None:
        """The threshold for the target rate on this camera (None without samples or rate)."""
        fph = self.frames_per_hour
        if fph is None or not self.hist:
            return None
        # the frames wanted above the threshold: a crossing lasts `run_mean` frames
        p = min(1.0, false_alarms_per_hour * max(1.0, self.run_mean) / fph)
        n = self.effective_frames()
        p0 = min(1.0, TAIL_FRAMES / n) if n > 0 else 1.0
        x = self.quantile(1.0 - max(p, p0))
        if x is None:
            return None
        if p < p0:  # rarer than the history shows: extend its exponential tail
            x1 = self.quantile(1.0 - min(1.0, 10 * p0))
            if x1 is not None and x > x1:
                x += (x - x1) / math.log(10) * math.log(p0 / p)
        return min(MAX_THRESHOLD, max(SCORE_FLOOR, x))

    def threshold(self, spec: WatchSpec) -> tuple[float, Source]:
        """The threshold in force for `spec` on this camera and where it comes from."""
        if spec.pinned_threshold is not None:
            return spec.pinned_threshold, "pinned"
        if self.ready:
            key = [self.samples // REFRESH, spec.false_alarms_per_hour]
            if self.cached[:2] != key:  # the histogram moves slowly: every REFRESH samples
                self.cached = [*key, self.calibrated_threshold(spec.false_alarms_per_hour)]
            if self.cached[2] is not None:
                return self.cached[2], "calibrated"
        return spec.threshold, "calibrating"

    def low(self, threshold: float) -> float:
        """The hysteresis level: an open firing ends below it."""
        if self.median[0] != self.samples // REFRESH:
            self.median = [self.samples // REFRESH, self.quantile(0.5) if self.hist else None]
        base = min(self.median[1] or 0.0, threshold)
        return base + HYSTERESIS * (threshold - base)

    # ------------------------------------------------------------------ storage

    def to_json(self) -> dict[str, Any]:
        return {
            "f": self.fingerprint, "h": {str(b): w for b, w in self.hist.items()},
            "r": self.ref, "n": self.samples, "a0": self.first_at, "a": self.last_at,
            "i": self.interval_ms, "q": self.queue, "s": self.since, "t": self.tail,
            "rl": self.run, "rm": self.run_mean, "rn": self.runs, "tc": self.cached,
            "md": self.median,
        }  # fmt: skip

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Calibration:
        return cls(
            d["f"], {int(b): float(w) for b, w in d["h"].items()}, int(d["r"]), int(d["n"]),
            int(d["a0"]), int(d["a"]), float(d["i"]), [list(e) for e in d["q"]], int(d["s"]),
            d.get("t"), int(d.get("rl", 0)), float(d.get("rm", 1.0)), int(d.get("rn", 0)),
            list(d.get("tc", [])), list(d.get("md", [-1, None])),
        )  # fmt: skip


def per_frame_quantile(false_alarms_per_hour: float, frames_per_hour: float) -> float:
    """`1 - target / frames_per_hour`, clamped to [0, 1] (documentation and tests)."""
    if frames_per_hour <= 0 or not math.isfinite(frames_per_hour):
        return 1.0
    return min(1.0, max(0.0, 1.0 - false_alarms_per_hour / frames_per_hour))
