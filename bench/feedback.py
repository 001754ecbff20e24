"""What the feedback cache adapter adds, and what it costs the worker.

    python -m bench.feedback [--data DIR] [--seeds 3] [--batch 32] [--reps 200]

1. Held-out accuracy vs feedback examples per label (`acc_by_k`, k = 0, 1, 4, 10, 40) on the 15
   classes of the sample photos with a random tiny CLIP (zero-shot is chance there): per seed,
   8 photos per class are held out and never seen by the adapter; k examples per class come
   from the other 32 photos and their mirror images (k = 40 needs them), alpha/beta by the
   adapter's own k-fold CV, as `harclip adapt build` does. k = 0 is the head alone.
2. The worker's per-batch scoring cost (head + top-k, `score_top_k`) with an adapter at its size
   cap (`adapt.max_keys` keys) vs none, at the tiny model's size and at ViT-B/32's (D = 512), and
   the whole batch (median embed + median score) ratio for the tiny model's ONNX engine; one
   BLAS thread.
   The adapter's extra work is ~2·B·M·D multiply-adds (B frames, M keys): for ViT-B/32 at the
   cap, 2·32·1024·512 ≈ 34 MFLOP per batch against ≈ 140 GFLOP for embedding 32 images.

Prints a table, then one JSON object as the last stdout line.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bench.harness import sample_photos
from harclip.adapt.build import Item, build_candidate
from harclip.adapt.cache import Adapter, Applied
from harclip.adapt.holder import score_top_k
from harclip.config import load_settings
from harclip.config.adapt import AdaptSettings
from harclip.control import HeadInUse
from harclip.messages import ModelRef
from harclip.model.head import Head

if TYPE_CHECKING:
    from harclip.config import Settings
    from harclip.engines import Engine
    from harclip.model.bundle import Bundle

KS = (0, 1, 4, 10, 40)
HELD_OUT = 8  # photos per class the adapter never sees


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.feedback", description=__doc__)
    ap.add_argument("--data", type=Path, help="shared data folder (default HARCLIP_SAMPLE_DATA)")
    ap.add_argument("--seeds", type=int, default=3, help="random splits averaged")
    ap.add_argument("--batch", type=int, default=32, help="frames per batch for the cost")
    ap.add_argument("--reps", type=int, default=200, help="timed batches per variant")
    args = ap.parse_args(argv)
    photos = sample_photos(args.data)
    settings = load_settings()
    with tempfile.TemporaryDirectory(prefix="bench-feedback-") as tmp:
        bundle, engine = _tiny(Path(tmp), settings)
        head = bundle.load_head()
        emb, flipped, labels, px = _embed(engine, bundle, photos, settings)
        acc = _acc_by_k(head, emb, flipped, labels, args.seeds)
        from threadpoolctl import threadpool_limits

        with threadpool_limits(1, "blas"):  # one BLAS thread, as beside the engine on 2 cores
            cost = _cost(head, engine, px[: args.batch], AdaptSettings(), args.reps)
        engine.close()
    print(f"{'k per label':>12} {'held-out acc':>13}")
    for k in KS:
        print(f"{k:>12} {acc[k]:>13.3f}")
    print(f"chance (15 classes): {1 / 15:.3f}")
    print(f"\nper batch of {args.batch}: scoring {'D':>4} {'none ms':>8} {'cap ms':>8} {'x':>6}")
    for d in ("tiny", "vit-b-32"):
        c = cost[d]
        print(f"{'':>22}{c['dim']:>4} {c['none_ms']:>8.3f} {c['cap_ms']:>8.3f} {c['ratio']:>6.2f}")
    w = cost["batch_tiny"]
    print(f"whole batch (tiny onnx embed + score): {w['none_ms']:.2f} ms -> {w['cap_ms']:.2f} ms "
          f"(x{w['ratio']:.4f}); adapter at cap: {cost['cap_keys']} keys")  # fmt: skip
    out = {"acc_by_k": {str(k): round(v, 4) for k, v in acc.items()}, "chance": round(1 / 15, 4),
           "seeds": args.seeds, "held_out_per_class": HELD_OUT, "batch": args.batch,
           "cap_keys": cost["cap_keys"],
           "score_ms": {d: cost[d] for d in ("tiny", "vit-b-32")},
           "batch_ms_tiny": cost["batch_tiny"]}  # fmt: skip
    print(json.dumps(out))
    return 0


def _tiny(tmp: Path, settings: Settings) -> tuple[Bundle, Engine]:
    from harclip.clip.export import ExportOptions, export_bundle
    from harclip.clip.init import init_model
    from harclip.clip.load import load_clip
    from harclip.engines import create_engine
    from harclip.model.bundle import Bundle

    model = init_model(tmp / "clip", "tiny")
    path = export_bundle(load_clip(model), tmp / "bundle", ExportOptions(formats=("onnx",))).path
    bundle = Bundle.load(path)
    return bundle, create_engine(bundle, "onnx", settings.model)


def _embed(
    engine: Engine, bundle: Bundle, photos: list[Path], settings: Settings
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Embeddings of the photos and of their mirror images, their labels, and the pixels."""
    from harclip.model.preprocess import decode_image

    size, mp = bundle.manifest.image_size, settings.model.max_pixels
    px = np.stack([decode_image(p.read_bytes(), size, max_pixels=mp) for p in photos])

    def run(x: np.ndarray) -> np.ndarray:
        return np.concatenate([engine.embed(x[i : i + 64]) for i in range(0, len(x), 64)])

    labels = np.array([p.parent.name for p in photos])
    return run(px), run(np.ascontiguousarray(px[:, :, ::-1])), labels, px


def _acc_by_k(
    head: Head, emb: np.ndarray, flipped: np.ndarray, labels: np.ndarray, seeds: int
) -> dict[int, float]:
    s = AdaptSettings(per_label_cap=max(KS), folds=5, min_items=2)
    out = {k: 0.0 for k in KS}
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        test: list[int] = []
        pool: list[tuple[int, bool]] = []  # (photo, mirrored)
        per_class: dict[str, list[tuple[int, bool]]] = {}
        for c in sorted(set(labels)):
            idx = rng.permutation(np.flatnonzero(labels == c))
            test += idx[:HELD_OUT].tolist()
            rest = [(int(i), False) for i in idx[HELD_OUT:]] + [
                (int(i), True) for i in idx[HELD_OUT:]
            ]
            per_class[c] = [rest[j] for j in rng.permutation(len(rest))]
            pool += rest
        x_test, y_test = emb[test], labels[test]
        for k in KS:
            if k == 0:
                pred = np.array(head.labels)[head.logits(x_test).argmax(axis=1)]
            else:
                items = [
                    Item(f"s{seed}-{c}-{j}", "cam", c, j,
                         (flipped if m else emb)[i])
                    for c, chosen in per_class.items()
                    for j, (i, m) in enumerate(chosen[:k])
                ]  # fmt: skip
                a = build_candidate(items, head, ["*"], s, version=1, model="")
                ap = Applied.fit(a, head)
                z = ap.logits(x_test, np.zeros(len(test), np.int64))
                pred = np.array(ap.labels)[z.argmax(axis=1)]
            out[k] += float((pred == y_test).mean()) / seeds
    return out


def _cap_adapter(head: Head, s: AdaptSettings, rng: np.random.Generator) -> Adapter:
    """An adapter at the size cap: `max_keys` random unit keys spread over the head's labels."""
    d = head.embed_dim
    keys = rng.standard_normal((s.max_keys, d)).astype(np.float32)
    keys /= np.linalg.norm(keys, axis=1, keepdims=True)
    n = len(head.labels)
    return Adapter(version=1, scopes=("*",), labels=head.labels, keys=keys,
                   values=(np.arange(s.max_keys) % n).astype(np.int32),
                   scope_of=np.zeros(s.max_keys, np.int32), alpha=0.1, beta=20.0)  # fmt: skip


def _time(fn: Callable[[], object], reps: int) -> float:
    """Median ms of `fn()` over `reps` calls (after 5 warm-up calls)."""
    for _ in range(5):
        fn()
    t = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        t.append(time.perf_counter() - start)
    return float(np.median(t) * 1000)


def _cost(
    head: Head, engine: Engine, px: np.ndarray, s: AdaptSettings, reps: int
) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    ref = ModelRef(name="bench", version="1", head_version=head.version)
    streams = ["cam-1"] * len(px)
    out: dict[str, Any] = {"cap_keys": s.max_keys}
    big_w = rng.standard_normal((512, len(head.labels))).astype(np.float32)
    big = Head(head.labels, big_w, np.zeros(len(head.labels), np.float32), 100.0, 1)
    for name, h in (("tiny", head), ("vit-b-32", big)):
        emb = rng.standard_normal((len(px), h.embed_dim)).astype(np.float32)
        emb /= np.linalg.norm(emb, axis=1, keepdims=True)
        in_use = HeadInUse(h, ref)
        applied = Applied.fit(_cap_adapter(h, s, rng), h)
        none = _time(lambda: score_top_k(in_use, None, emb, streams, 5), reps)  # noqa: B023
        cap = _time(lambda: score_top_k(in_use, applied, emb, streams, 5), reps)  # noqa: B023
        out[name] = {"dim": h.embed_dim, "none_ms": round(none, 4), "cap_ms": round(cap, 4),
                     "ratio": round(cap / none, 3)}  # fmt: skip
    embed = _time(lambda: engine.embed(px), max(5, reps // 4))  # [B, S, S, 3] -> [B, D]
    tiny = out["tiny"]
    none, cap = embed + tiny["none_ms"], embed + tiny["cap_ms"]
    out["batch_tiny"] = {"embed_ms": round(embed, 3), "none_ms": round(none, 3),
                         "cap_ms": round(cap, 3), "ratio": round(cap / none, 4)}  # fmt: skip
    return out


if __name__ == "__main__":
    raise SystemExit(main())
