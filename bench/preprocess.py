"""Preprocessing benchmark: harclip.model.preprocess against transformers' CLIPImageProcessor.

    python -m bench.preprocess [--images DIR] [--limit N] [--no-embed]

Measures images/s both ways single-threaded (decode + resize + crop; HF also rescales and
normalises, which our engines do inside the graph), ours threaded too; pixel |Δ| between the two
(uint8 scale); and the embedding cosine between both preprocessings through a ViT-B/32-shaped
random CLIP exported to ONNX (made once with `harclip init-model` + `harclip export`, cached in a
temp folder). The last stdout line is one JSON object.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np

from bench import harness
from harclip.model.imageio import iter_image_paths
from harclip.model.preprocess import preprocess_batch

SIZE = 224
MAX_PIXELS = 40_000_000
CACHE = Path(tempfile.gettempdir()) / "harclip-bench" / "vit-b-32"


def _hf_processor(normalise: bool) -> Callable[[bytes], np.ndarray]:
    import transformers
    from PIL import Image

    transformers.logging.set_verbosity_error()
    proc = transformers.CLIPImageProcessor(do_rescale=normalise, do_normalize=normalise)

    def run(data: bytes) -> np.ndarray:
        out = proc(images=Image.open(io.BytesIO(data)), return_tensors="np")["pixel_values"]
        return np.asarray(out[0])

    return run


def _rate(fn: Callable[[], object], n: int, repeat: int) -> float:
    """Best of `repeat` runs of `fn` (which handles `n` images), images per second."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return n / best


def _hf_uint8(datas: Sequence[bytes]) -> np.ndarray:
    """HF's resized, cropped pixels before rescale/normalise: uint8 [N, S, S, 3]."""
    run = _hf_processor(normalise=False)
    return np.stack([run(d).transpose(1, 2, 0) for d in datas]).round().astype(np.uint8)


def _bundle(harclip: str) -> Path:
    model, bundle = CACHE / "model", CACHE / "bundle"
    if not (bundle / "manifest.json").is_file():
        CACHE.mkdir(parents=True, exist_ok=True)
        print(f"making a ViT-B/32-shaped random CLIP bundle in {CACHE} ...", file=sys.stderr)
        if not (model / "config.json").is_file():
            subprocess.run([harclip, "init-model", str(model), "--arch", "vit-b-32"], check=True)
        subprocess.run(
            [harclip, "export", "--model", str(model), "--output", str(bundle), "--format", "onnx"],
            check=True,
        )
    return bundle


def _embed_cosines(ours: np.ndarray, hf: np.ndarray, batch: int) -> np.ndarray:
    from harclip.config import ModelSettings
    from harclip.engines import create_engine
    from harclip.model.bundle import Bundle

    harclip = str(Path(sys.executable).with_name("harclip"))
    engine = create_engine(Bundle.load(_bundle(harclip)), "onnx", ModelSettings())
    try:
        cos = []
        for i in range(0, len(ours), batch):
            a, b = engine.embed(ours[i : i + batch]), engine.embed(hf[i : i + batch])
            cos.append(np.sum(a * b, axis=1))
    finally:
        engine.close()
    return np.concatenate(cos)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--images", type=Path, help="folder of images (default: HARCLIP_SAMPLE_DATA/har-sample)"
    )
    parser.add_argument("--limit", type=int, default=0, help="at most this many images (0: all)")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs, best kept")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--batch-size", type=int, default=32, help="engine batch for cosines")
    parser.add_argument("--no-embed", action="store_true", help="skip the embedding comparison")
    args = parser.parse_args(argv)

    args.images = args.images or harness.sample_data() / "har-sample"
    paths = list(iter_image_paths([args.images]))[: args.limit or None]
    if not paths:
        parser.error(f"no images under {args.images}")
    datas = [p.read_bytes() for p in paths]
    n = len(datas)

    hf = _hf_processor(normalise=True)
    hf_rate = _rate(lambda: [hf(d) for d in datas], n, args.repeat)
    cv2.setNumThreads(1)
    ours_rate = _rate(lambda: preprocess_batch(datas, SIZE, max_pixels=MAX_PIXELS), n, args.repeat)
    cv2.setNumThreads(args.threads)
    with ThreadPoolExecutor(args.threads) as pool:
        threaded_rate = _rate(
            lambda: preprocess_batch(datas, SIZE, max_pixels=MAX_PIXELS, pool=pool), n, args.repeat
        )

    ours, errors = preprocess_batch(datas, SIZE, max_pixels=MAX_PIXELS)
    failed = [str(p) for p, e in zip(paths, errors, strict=True) if e is not None]
    hf_pixels = _hf_uint8(datas)
    diff = np.abs(ours.astype(np.int16) - hf_pixels.astype(np.int16))
    result: dict[str, object] = {
        "images": n,
        "failed": len(failed),
        "hf_img_per_s": round(hf_rate, 1),
        "ours_img_per_s": round(ours_rate, 1),
        "ours_threaded_img_per_s": round(threaded_rate, 1),
        "threads": args.threads,
        "speedup_vs_hf": round(ours_rate / hf_rate, 2),
        "speedup_threaded_vs_hf": round(threaded_rate / hf_rate, 2),
        "pixel_max_abs_diff": int(diff.max()),
        "pixel_mean_abs_diff": round(float(diff.mean()), 4),
        "pixel_worst_image_mean_abs_diff": round(float(diff.mean(axis=(1, 2, 3)).max()), 4),
    }
    if not args.no_embed:
        cos = _embed_cosines(ours, hf_pixels, args.batch_size)
        result["min_cosine"] = round(float(cos.min()), 6)
        result["mean_cosine"] = round(float(cos.mean()), 6)

    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"preprocessing, {n} images from {args.images}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in result.items():
        table.add_row(key, str(value))
    Console(stderr=False).print(table)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
