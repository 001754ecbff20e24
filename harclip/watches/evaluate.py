"""`harclip watch eval`: how well watches fire on a labelled photo set played as camera streams,
at the calibrated threshold (per camera, `harclip.watches.calibration`) and at the raw absolute
one, with the events app's own firing code (`harclip.watches.firing`).

The set (`--data DIR|CSV`: a folder with `labels.csv` (`path,label`) or class subfolders, or the
CSV itself) is played as one stream per class (`cam-<label>`): each stream shows its class's
photos in a seeded random order, each photo held for `hold_s` seconds at `fps` frames per second
(a scene lasts a while, as in video), each frame's score moved by a small gaussian `jitter`
(frames of one scene differ a little; without it a camera has as many distinct scores as
photos, and no threshold can be placed between them), for `minutes` of capture time. A watch
has a target class: every `episode_every_s` seconds, every *other* class's stream shows the
target's photos for `episode_s` seconds (a scripted episode); the rest of the time it shows its
own (background).

- a firing (`watch.start`) that overlaps an episode (from its start to `min_duration` after its
  end) is a true positive; any other is a false alarm;
- recall = episodes with a firing / episodes; precision = true positives / firings;
- false alarms per hour = false alarms / hours of background (time outside episodes);
- the first `warmup_s` seconds of each stream (the camera calibrating) are played but not
  counted, in both modes, so both are compared on the same frames;
- raw: the same with `pinned_threshold` = the watch's absolute `threshold` on every camera.

Scores are the worker's (harclip.watches.spec): the positive vector (mean of its prompts' text
embeddings) against the negatives (`DEFAULT_NEGATIVES` unless given), softmax with the bundle
head's logit scale. Without `--bundle` a randomly initialised tiny CLIP is built (as the tests
do): its scores carry no meaning for the prompt, so precision and recall say nothing about CLIP,
but each class-stream still has its own score level (a drift between cameras) and the
calibrated false-alarm rate on background streams is still measured against its target.
"""

from __future__ import annotations

import argparse
import csv
import math
import random
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harclip.argtypes import FRACTION, RATE, whole
from harclip.config import Settings
from harclip.errors import HarclipError
from harclip.watches.calibration import fingerprint
from harclip.watches.firing import WatchState, step
from harclip.watches.spec import DEFAULT_NEGATIVES, Watch, WatchSpec

MAX_PHOTOS = 20_000  # photos read from a set
MAX_STREAM_MINUTES = 24 * 60


class EvalError(HarclipError):
    """Bad evaluation input (data, watch, parameters): the message names it."""


@dataclass(frozen=True)
class Play:
    """How the set is played (see the module docstring)."""

    fps: float = 5.0
    minutes: float = 20.0
    hold_s: float = 2.0
    episode_every_s: float = 600.0  # rarer than the target rate: else it is the normal
    episode_s: float = 6.0
    warmup_s: float = 180.0
    jitter: float = 0.01  # sd of a per-frame change of the score within one scene
    seed: int = 0

    def check(self) -> None:
        for name in ("fps", "minutes", "hold_s", "episode_every_s", "episode_s"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v > 0):
                raise EvalError(f"{name} must be a positive number, got {v}")
        if self.fps > 60 or self.minutes > MAX_STREAM_MINUTES:
            raise EvalError(f"fps ≤ 60 and minutes ≤ {MAX_STREAM_MINUTES}")
        if not (0 <= self.jitter <= 0.5):
            raise EvalError(f"jitter must be in [0, 0.5], got {self.jitter}")
        if not (0 <= self.warmup_s < self.minutes * 60):
            raise EvalError("warmup_s must be ≥ 0 and shorter than the stream")


def load_labelled(data: Path) -> list[tuple[Path, str]]:
    """(photo, label) of a folder (`labels.csv`, else class subfolders) or a CSV `path,label`."""
    csv_path = data if data.is_file() else data / "labels.csv"
    if csv_path.is_file():
        out = []
        with csv_path.open(newline="") as f:
            reader = csv.DictReader(f)
            if reader.fieldnames is None or not {"path", "label"} <= set(reader.fieldnames):
                raise EvalError(f"{csv_path}: needs the columns path,label")
            for row in reader:
                out.append((csv_path.parent / row["path"], row["label"]))
    elif data.is_dir():
        images = (".jpg", ".jpeg", ".png")
        out = [(p, d.name) for d in sorted(data.iterdir()) if d.is_dir()
               for p in sorted(d.iterdir()) if p.suffix.lower() in images]  # fmt: skip
    else:
        raise EvalError(f"--data {data}: no such folder or CSV")
    if not out:
        raise EvalError(f"--data {data}: no labelled photos")
    if len(out) > MAX_PHOTOS:
        raise EvalError(f"--data {data}: {len(out)} photos, at most {MAX_PHOTOS}")
    if len({lb for _, lb in out}) < 2:
        raise EvalError(f"--data {data}: needs at least two classes (a target and background)")
    return out


class Scorer:
    """Image and text embeddings of a bundle (ONNX engines) and the worker's watch score."""

    def __init__(self, bundle_path: Path, settings: Settings) -> None:
        from harclip.engines import create_engine
        from harclip.model.bundle import Bundle

        self.bundle = Bundle.load(bundle_path)
        self.engine = create_engine(self.bundle, "onnx", settings.model)
        self.text = self.bundle.text_encoder()
        self.scale = float(self.bundle.load_head().logit_scale)
        self.max_pixels = settings.model.max_pixels

    def embed_images(self, paths: Sequence[Path], batch: int = 32) -> np.ndarray:
        from harclip.model.preprocess import preprocess_batch

        parts = []
        for i in range(0, len(paths), batch):
            data = [p.read_bytes() for p in paths[i : i + batch]]
            pixels, errors = preprocess_batch(data, self.engine.image_size,
                                              max_pixels=self.max_pixels)  # fmt: skip
            bad = [str(paths[i + j]) for j, e in enumerate(errors) if e is not None]
            if bad:
                raise EvalError(f"cannot decode {bad[0]} ({len(bad)} photos)")
            parts.append(self.engine.embed(pixels))
        return np.concatenate(parts)

    def watch(self, spec: WatchSpec) -> Watch:
        pos = self.text.encode(spec.prompts).mean(axis=0)
        neg = self.text.encode(list(spec.negatives or DEFAULT_NEGATIVES))
        pos /= max(float(np.linalg.norm(pos)), 1e-12)
        return Watch(spec=spec, version=1, positive=pos.tolist(), negatives=neg.tolist())

    def scores(self, w: Watch, emb: np.ndarray) -> np.ndarray:
        vecs = np.asarray([w.positive, *w.negatives], dtype=np.float32)
        logits = self.scale * (emb @ vecs.T)
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        return np.asarray(p[:, 0] / p.sum(axis=1))

    def close(self) -> None:
        self.engine.close()


def _stream(own: np.ndarray, target: np.ndarray, play: Play, rng: random.Random) -> tuple[
    list[float], list[bool]
]:  # fmt: skip
    """One camera's scores per frame and whether each frame is in a scripted episode."""
    n = int(play.minutes * 60 * play.fps)
    hold = max(1, round(play.hold_s * play.fps))
    every, length = round(play.episode_every_s * play.fps), round(play.episode_s * play.fps)
    scores: list[float] = []
    episode: list[bool] = []
    current = 0.0
    for i in range(n):
        in_ep = i % every >= every - length
        if i % hold == 0 or (in_ep != (episode[-1] if episode else False)):
            pool = target if in_ep else own
            current = float(pool[rng.randrange(len(pool))])
        scores.append(min(1.0, max(0.0, current + rng.gauss(0.0, play.jitter))))
        episode.append(in_ep)
    return scores, episode


def _count(spec: WatchSpec, streams: dict[str, tuple[list[float], list[bool]]],
           play: Play) -> dict[str, float]:  # fmt: skip
    w = Watch(spec=spec, version=1, positive=[1.0], negatives=[[0.0]])
    ident = fingerprint(w)
    dt = 1000.0 / play.fps
    warm = int(play.warmup_s * play.fps)
    late = math.ceil(spec.min_duration_seconds * play.fps) + 1  # a firing may come this late
    tp = fp = episodes = found = 0
    background = 0
    thresholds, per_stream = [], []  # final threshold, false alarms per hour of each camera
    for sid, (scores, in_ep) in streams.items():
        fp_before, bg_before = fp, background
        st = WatchState()
        hit: set[int] = set()  # episodes (by their first frame) with a firing
        starts: list[int] = []
        for i, s in enumerate(scores):
            at = int(i * dt)
            if i >= warm and not in_ep[i]:
                background += 1
            for e in step(st, w, sid, i, at, s, None, at, ident):
                if e.type == "watch.start" and i >= warm:
                    starts.append(i)
        ep_first = [i for i in range(warm, len(in_ep)) if in_ep[i] and not in_ep[i - 1]]
        episodes += len(ep_first)
        for i in starts:
            owner = next((f for f in ep_first if f <= i < _ep_end(in_ep, f) + late), None)
            if owner is None:
                fp += 1
            else:
                tp += 1
                hit.add(owner)
        found += len(hit)
        thresholds.append(st.cal.threshold(spec)[0])
        per_stream.append((fp - fp_before) / max(1e-9, (background - bg_before) / play.fps / 3600))
    hours = background / play.fps / 3600
    return {
        "firings": tp + fp, "true_positives": tp, "false_alarms": fp, "episodes": episodes,
        "precision": tp / (tp + fp) if tp + fp else 0.0,
        "recall": found / episodes if episodes else 0.0,
        "false_alarms_per_hour": fp / hours if hours else 0.0, "background_hours": hours,
        "threshold_min": min(thresholds), "threshold_max": max(thresholds),
        "streams_over_target": sum(r > spec.false_alarms_per_hour for r in per_stream),
        "worst_stream_per_hour": max(per_stream),
    }  # fmt: skip


def _ep_end(in_ep: list[bool], first: int) -> int:
    i = first
    while i < len(in_ep) and in_ep[i]:
        i += 1
    return i


def evaluate_watch(
    spec: WatchSpec, target: str, per_label: dict[str, np.ndarray], play: Play
) -> dict[str, Any]:
    """Calibrated and raw figures of one watch (scores per photo of each label given)."""
    if target not in per_label:
        raise EvalError(f"target class {target!r} is not in the data ({sorted(per_label)})")
    rng = random.Random(f"{play.seed}-{spec.name}")
    streams = {f"cam-{lb}": _stream(s, per_label[target], play, rng)
               for lb, s in sorted(per_label.items()) if lb != target}  # fmt: skip
    raw_spec = spec.model_copy(update={"pinned_threshold": spec.threshold})
    cal, raw = _count(spec, streams, play), _count(raw_spec, streams, play)
    baselines = [float(np.median(s)) for s, _ in streams.values()]
    return {
        "watch": spec.name, "target": target, "streams": len(streams),
        "target_per_hour": spec.false_alarms_per_hour, "calibrated": cal, "raw": raw,
        "baseline_spread": max(baselines) - min(baselines),
    }  # fmt: skip


def default_specs(labels: Sequence[str], target_per_hour: float) -> list[tuple[WatchSpec, str]]:
    """One watch per target class of the set that names an action worth watching (fighting,
    then the first class), prompted like the label set's prompts."""
    targets = [lb for lb in ("fighting", "calling") if lb in labels] or sorted(labels)[:1]
    return [(WatchSpec(name=lb, prompts=[f"a photo of a person {lb}"],
                       false_alarms_per_hour=target_per_hour), lb) for lb in targets]  # fmt: skip


def evaluate(
    data: Path,
    settings: Settings,
    *,
    watches: Sequence[tuple[WatchSpec, str]] = (),
    bundle: Path | None = None,
    play: Play = Play(),
    target_per_hour: float = 10.0,
    max_per_class: int | None = None,
) -> dict[str, Any]:
    """Figures of each watch (see the module docstring) and their means; `watches` are (spec,
    target class) pairs (default `default_specs`). Without `bundle` a random tiny CLIP is built."""
    play.check()
    photos = load_labelled(data)
    if max_per_class is not None:
        kept: dict[str, int] = {}
        photos = [(p, lb) for p, lb in photos
                  if (kept := kept | {lb: kept.get(lb, 0) + 1})[lb] <= max_per_class]  # fmt: skip
    labels = sorted({lb for _, lb in photos})
    specs = list(watches) or default_specs(labels, target_per_hour)
    with tempfile.TemporaryDirectory(prefix="harclip-watch-eval-") as tmp:
        path, random_weights = (bundle, False) if bundle is not None else (_tiny(Path(tmp)), True)
        scorer = Scorer(path, settings)
        try:
            emb = scorer.embed_images([p for p, _ in photos])
            out = []
            for spec, target in specs:
                s = scorer.scores(scorer.watch(spec), emb)
                per_label = {lb: s[[i for i, (_, x) in enumerate(photos) if x == lb]]
                             for lb in labels}  # fmt: skip
                out.append(evaluate_watch(spec, target, per_label, play))
        finally:
            scorer.close()
    return {"watches": out, "random_weights": random_weights, "photos": len(photos),
            "play": play.__dict__, **summary(out)}  # fmt: skip


def summary(results: Sequence[dict[str, Any]]) -> dict[str, float]:
    """The figures over all watches: rates per background hour, precision and recall pooled."""

    def pooled(mode: str) -> dict[str, float]:
        c = [r[mode] for r in results]
        hours = sum(x["background_hours"] for x in c)
        fired, tp = sum(x["firings"] for x in c), sum(x["true_positives"] for x in c)
        episodes = sum(x["episodes"] for x in c)
        found = sum(x["recall"] * x["episodes"] for x in c)
        return {"fa": sum(x["false_alarms"] for x in c) / hours if hours else 0.0,
                "p": tp / fired if fired else 0.0,
                "r": found / episodes if episodes else 0.0}  # fmt: skip

    cal, raw = pooled("calibrated"), pooled("raw")
    targets = [r["target_per_hour"] for r in results]
    return {
        "false_alarms_per_hour": round(cal["fa"], 3),
        "target_per_hour": sum(targets) / len(targets) if targets else 0.0,
        "raw_false_alarms_per_hour": round(raw["fa"], 3),
        "precision": round(cal["p"], 3), "recall": round(cal["r"], 3),
        "raw_precision": round(raw["p"], 3), "raw_recall": round(raw["r"], 3),
        "background_hours": round(sum(r["calibrated"]["background_hours"] for r in results), 3),
    }  # fmt: skip


def _tiny(tmp: Path) -> Path:
    """A random tiny CLIP exported to an ONNX bundle (as the tests build it)."""
    from harclip.clip.export import ExportOptions, export_bundle
    from harclip.clip.init import init_model
    from harclip.clip.load import load_clip

    model = init_model(tmp / "tiny-model", "tiny")
    return export_bundle(load_clip(model), tmp / "bundle", ExportOptions(formats=("onnx",))).path


def table(result: dict[str, Any]) -> str:
    """The figures as a text table (one row per watch and mode)."""
    head = (f"{'watch':<14}{'mode':<12}{'firings':>8}{'episodes':>9}{'precision':>10}"
            f"{'recall':>8}{'FA/h':>8}")  # fmt: skip
    rows = [head, "-" * len(head)]
    for r in result["watches"]:
        for mode in ("calibrated", "raw"):
            c = r[mode]
            rows.append(f"{r['watch']:<14}{mode:<12}{c['firings']:>8}{c['episodes']:>9}"
                        f"{c['precision']:>10.3f}{c['recall']:>8.3f}"
                        f"{c['false_alarms_per_hour']:>8.2f}")  # fmt: skip
    note = " (random weights: precision/recall say nothing about CLIP)"
    rows.append(f"target {result['target_per_hour']:g} false alarms per hour per camera; "
                f"{result['background_hours']:.2f} h of background"
                + (note if result["random_weights"] else ""))  # fmt: skip
    return "\n".join(rows)


def configure(parser: argparse.ArgumentParser) -> None:
    """The options of `harclip watch eval`."""
    parser.add_argument("--data", type=Path, required=True,
                        help="labelled set: folder (labels.csv, or subfolders) or CSV")  # fmt: skip
    parser.add_argument("--watch", help="the watch's name (default: one per chosen class)")
    parser.add_argument("--prompt", action="append", default=[], help="a prompt (repeatable)")
    parser.add_argument("--negative", action="append", default=[], help="a negative prompt")
    parser.add_argument("--target", help="the class the watch looks for (default: --watch)")
    parser.add_argument("--bundle", type=Path, help="model bundle (default: a random tiny CLIP)")
    parser.add_argument("--target-per-hour", type=RATE, default=10.0,
                        help="false alarms per hour per camera (calibration's target)")  # fmt: skip
    parser.add_argument(
        "--threshold", type=FRACTION, default=0.5, help="the raw absolute threshold"
    )
    parser.add_argument("--fps", type=RATE, default=Play.fps)
    parser.add_argument("--minutes", type=RATE, default=Play.minutes, help="per stream")
    parser.add_argument("--seed", type=whole(0), default=0)


def run(args: argparse.Namespace, settings: Settings) -> int:
    """`harclip watch eval`: the table, then one JSON line of the figures."""
    import json

    from pydantic import ValidationError

    try:
        watches: list[tuple[WatchSpec, str]] = []
        if args.watch or args.prompt:
            name = args.watch or (args.target or "watch")
            target = args.target or name
            spec = WatchSpec(name=name, prompts=args.prompt or [f"a photo of a person {target}"],
                             negatives=args.negative, threshold=args.threshold,
                             false_alarms_per_hour=args.target_per_hour)  # fmt: skip
            watches.append((spec, target))
        play = Play(fps=args.fps, minutes=args.minutes, seed=args.seed)
        result = evaluate(args.data, settings, watches=watches, bundle=args.bundle, play=play,
                          target_per_hour=args.target_per_hour)  # fmt: skip
    except ValidationError as e:
        err = e.errors()[0]
        print(f"error: watch field {'.'.join(map(str, err['loc']))}: {err['msg']}")
        return 2
    except HarclipError as e:
        print(f"error: {e}")
        return 2
    print(table(result))
    print(json.dumps({k: v for k, v in result.items() if k != "watches"} | {
        "watches": [{k: r[k] for k in ("watch", "target", "calibrated", "raw")}
                    for r in result["watches"]]}, separators=(",", ":")))  # fmt: skip
    return 0
