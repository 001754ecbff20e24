"""`export --validate` and `--benchmark`: every exported engine against PyTorch on the same
images, and img/s per engine at one batch size."""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from rich.table import Table

from harclip.clip.agreement import compare
from harclip.clip.load import LoadedClip
from harclip.clip.sampling import spread
from harclip.config import EngineName, Settings
from harclip.errors import HarclipError
from harclip.model.bundle import Bundle

VALIDATION_IMAGES = 512  # sample photos (or generated images) every engine is checked on
_T = TypeVar("_T")


def validation_images(
    settings: Settings, size: int, n: int = VALIDATION_IMAGES
) -> tuple[np.ndarray, str]:
    """uint8 [n, S, S, 3]: sample photos spread over every class when `settings.sample_photos`
    is set, else generated images (smooth colour blocks plus noise); and a word saying which."""
    photos = (
        spread(sorted(settings.sample_photos.glob("*/*.jpg")), n) if settings.sample_photos else []
    )
    if photos:
        from harclip.model.preprocess import preprocess_batch

        images, errors = preprocess_batch(
            [p.read_bytes() for p in photos], size, max_pixels=settings.model.max_pixels
        )
        ok = [e is None for e in errors]
        return images[ok], "sample photos"
    return generated_images(n, size), "generated images"


def generated_images(n: int, size: int, seed: int = 0) -> np.ndarray:
    """uint8 [n, S, S, 3]: 8×8 random colour blocks upscaled, plus pixel noise."""
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 256, (n, 8, 8, 3)).astype(np.int16)
    reps = -(-size // 8)
    img = np.repeat(np.repeat(blocks, reps, axis=1), reps, axis=2)[:, :size, :size]
    img = img + rng.integers(-20, 21, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def torch_embeddings(clip: LoadedClip, images: np.ndarray, batch: int = 32) -> np.ndarray:
    """The PyTorch reference: float32 [N, D], L2-normalised."""
    run = pytorch_embed(clip)
    return np.concatenate([run(images[i : i + batch]) for i in range(0, len(images), batch)])


def pytorch_embed(clip: LoadedClip) -> Callable[[np.ndarray], np.ndarray]:
    """PyTorch eager fp32 `ImageEncoder` of `clip`: uint8 [N, S, S, 3] -> float32 [N, D]."""
    import torch

    from harclip.clip.wrappers import ImageEncoder

    module = ImageEncoder(clip.model, clip.mean, clip.std, clip.image_size).eval()

    def run(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return module(torch.from_numpy(x)).numpy()  # type: ignore[no-any-return]

    return run


def _engines(bundle: Bundle) -> list[tuple[str, EngineName]]:
    """(label, engine name) per exported engine; tensorrt once per precision."""
    out: list[tuple[str, EngineName]] = []
    for name, entry in bundle.manifest.engines.items():
        if isinstance(entry, dict):
            out += [(f"{name}-{p}", name) for p in entry]  # type: ignore[misc]
        else:
            out.append((name, name))  # type: ignore[arg-type]
    return out


def _create(bundle: Bundle, label: str, name: EngineName, settings: Settings) -> Any:
    from harclip.engines import create_engine

    model = settings.model
    if name == "tensorrt":
        model = model.model_copy(update={"tensorrt_precision": label.split("-", 1)[1]})
    with warnings.catch_warnings():
        # torch 2.15 deprecates torch.jit.load; the TorchScript engine is still what we validate
        warnings.filterwarnings("ignore", "`torch.jit.load` is deprecated", FutureWarning)
        return create_engine(bundle, name, model)


def validate_bundle(bundle: Bundle, clip: LoadedClip, settings: Settings) -> dict[str, Any]:
    """Per engine against PyTorch (`harclip.clip.agreement`, scored by the bundle's head): max |Δ|
    of embeddings, min cosine, raw and margin-aware top-1 agreement and the score error bound;
    an engine that cannot run here (no GPU) gets its error instead."""
    images, source = validation_images(settings, bundle.manifest.image_size)
    ref = torch_embeddings(clip, images)
    head = bundle.load_head()
    report: dict[str, Any] = {"images": len(images), "source": source, "engines": {}}
    for label, name in _engines(bundle):
        try:
            engine = _create(bundle, label, name, settings)
            try:
                emb = engine.embed(images)
            finally:
                engine.close()
        except HarclipError as e:
            report["engines"][label] = {"error": str(e)}
            continue
        report["engines"][label] = compare(ref, emb, head).as_dict()
    return report


def validation_table(report: dict[str, Any]) -> Table:
    t = Table(title=f"engines vs PyTorch on {report['images']} {report['source']}")
    cols = ("engine", "max |Δ|", "min cosine", "top-1 agreement", "error bound", "decisive: agree")
    for col in cols:
        t.add_column(col, justify="left" if col == "engine" else "right")
    for label, row in report["engines"].items():
        if "error" in row:
            t.add_row(label, f"[red]{row['error']}[/]", "", "", "", "")
        else:
            t.add_row(
                label, f"{row['max_abs_diff']:.2e}", f"{row['min_cosine']:.6f}",
                f"{100 * row['top1_agreement']:.1f} %", f"{row['error_bound']:.3g}",
                f"{row['decisive_images']}: {100 * row['decisive_agreement']:.1f} %",
            )  # fmt: skip
    return t


def benchmark_bundle(
    bundle: Bundle, clip: LoadedClip, settings: Settings, batch: int, seconds: float = 2.0
) -> dict[str, dict[str, float]]:
    """img/s and ms/batch per engine (and PyTorch eager) at `batch`, each timed for about
    `seconds` after warm-up, each in a fresh process: torch's OpenMP threads, once they have run
    in a process, keep ONNX Runtime's threads from the cores (measured: ~2x slower)."""
    out = {"pytorch-eager": in_fresh_process(time_pytorch, clip.name, batch, seconds, 0)}
    for label, name in _engines(bundle):
        try:
            out[label] = in_fresh_process(
                time_engine, bundle.path, label, name, settings, batch, seconds
            )
        except HarclipError:
            continue  # not runnable here (no GPU); validate reports why
    return out


def in_fresh_process(fn: Callable[..., _T], *args: Any) -> _T:
    """`fn(*args)` in a new (spawned) Python process; its exception is re-raised here."""
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(fn, args)


def time_pytorch(model: str, batch: int, seconds: float, threads: int) -> dict[str, float]:
    """PyTorch eager fp32 `ImageEncoder` of `model` (hub id or folder), generated images."""
    import torch

    from harclip.clip.load import load_clip

    if threads > 0:
        torch.set_num_threads(threads)
    clip = load_clip(model)
    return time_batches(pytorch_embed(clip), generated_images(batch, clip.image_size), seconds)


def time_engine(
    path: Path, label: str, name: EngineName, settings: Settings, batch: int, seconds: float
) -> dict[str, float]:
    """One engine of the bundle at `path`, generated images."""
    bundle = Bundle.load(path)
    engine = _create(bundle, label, name, settings)
    try:
        images = generated_images(batch, bundle.manifest.image_size)
        return time_batches(engine.embed, images, seconds)
    finally:
        engine.close()


def time_batches(
    fn: Any, images: np.ndarray, seconds: float, min_runs: int = 3
) -> dict[str, float]:
    """Run `fn(images)` once to warm up, then for `seconds` (at least `min_runs` times)."""
    fn(images)
    runs, start = 0, time.perf_counter()
    while runs < min_runs or time.perf_counter() - start < seconds:
        fn(images)
        runs += 1
    per_batch = (time.perf_counter() - start) / runs
    return {"img_per_s": len(images) / per_batch, "ms_per_batch": 1000 * per_batch}
