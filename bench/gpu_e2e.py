"""The end-to-end part of `bench.gpu`: JPEG bytes -> decode -> engine -> head top-k, four
ways (see that script's docstring), and its figures for the JSON line."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

WARMUP_CALLS = 3  # the first CUDA calls pick kernels (cuBLAS heuristics, cuDNN), not timed


def jpegs_to_decode(settings: Any, n: int = 64) -> tuple[list[bytes], str]:
    """Encoded photos to decode: the sample photos' own bytes, else generated JPEGs."""
    photos = sorted(settings.sample_photos.glob("*/*.jpg")) if settings.sample_photos else []
    if photos:
        step = max(1, len(photos) // n)
        return [p.read_bytes() for p in photos[::step][:n]], "sample photos"
    import cv2

    from harclip.clip.validate import generated_images

    images = generated_images(n, 320)[:, :, :, ::-1]
    return [cv2.imencode(".jpg", img)[1].tobytes() for img in images], "generated JPEGs"


def _time_calls(fn: Callable[[int], object], seconds: float) -> float:
    """ms per call of `fn(k)` (k counts calls) after warm-up, over >= 3 calls and `seconds`."""
    for k in range(WARMUP_CALLS):
        fn(k)
    runs, start = 0, time.perf_counter()
    while runs < 3 or time.perf_counter() - start < seconds:
        fn(runs)
        runs += 1
    return 1000 * (time.perf_counter() - start) / runs


def measure_e2e(
    bundle_path: Path, device: str, dtype: str, batches: list[int], seconds: float,
    jpegs: list[bytes],
) -> dict[str, dict[int, float]]:  # fmt: skip
    """ms per batch of JPEG bytes -> top-k, per way (see the module docstring) and batch."""
    from concurrent.futures import ThreadPoolExecutor

    from harclip.config import ModelSettings
    from harclip.engines import create_engine
    from harclip.engines.gpu_decode import TorchDecoder
    from harclip.model.bundle import Bundle
    from harclip.model.preprocess import preprocess_batch

    bundle = Bundle.load(bundle_path)
    size, head = bundle.manifest.image_size, bundle.load_head()
    engine: Any = create_engine(bundle, "torch", ModelSettings(torch_dtype=dtype, device=device))
    decoder = TorchDecoder(size, max_pixels=10**8, device=device)
    pool = ThreadPoolExecutor(os.cpu_count() or 1)
    ahead = ThreadPoolExecutor(1)
    big = (jpegs * (-(-max(batches) * 2 // len(jpegs))))[: max(batches) * 2]

    def chunk(k: int, b: int) -> list[bytes]:
        start = (k * b) % len(big)
        return (big[start:] + big)[:b]

    def gpu_decode(data: list[bytes]) -> Any:
        pixels, _ = decoder.decode(data)
        return pixels if engine.takes_tensors else pixels.numpy()

    ways = ("e2e-gpu", "e2e-gpu-overlap", "cpu-decode", "model-only")
    ms: dict[str, dict[int, float]] = {w: {} for w in ways}
    for b in batches:
        ready, _ = preprocess_batch(chunk(0, b), size, max_pixels=10**8)

        def model(k: int, ready: Any = ready) -> object:
            return head.top_k(engine.embed(ready), 5)

        ms["model-only"][b] = _time_calls(model, seconds)

        def cpu(k: int, b: int = b) -> object:
            pixels, _ = preprocess_batch(chunk(k, b), size, max_pixels=10**8, pool=pool)
            return head.top_k(engine.embed(pixels), 5)

        ms["cpu-decode"][b] = _time_calls(cpu, seconds)

        def gpu(k: int, b: int = b) -> object:
            return head.top_k(engine.embed(gpu_decode(chunk(k, b))), 5)

        ms["e2e-gpu"][b] = _time_calls(gpu, seconds)
        pending = [ahead.submit(gpu_decode, chunk(0, b))]

        def overlap(k: int, b: int = b, pending: list[Any] = pending) -> object:
            pixels = pending.pop().result()  # decoded while the previous batch ran
            pending.append(ahead.submit(gpu_decode, chunk(k + 1, b)))
            return head.top_k(engine.embed(pixels), 5)

        ms["e2e-gpu-overlap"][b] = _time_calls(overlap, seconds)
        pending.pop().result()
        for way in ms:
            t = ms[way][b]
            print(f"  {way:<16} batch {b:>3}: {b * 1000 / t:9.1f} frames/s {t:8.2f} ms",
                  file=sys.stderr)  # fmt: skip
    pool.shutdown()
    ahead.shutdown()
    engine.close()
    return ms


def e2e_result(e2e: dict[str, dict[int, float]]) -> dict[str, object]:
    out: dict[str, object] = {}
    for way, per in e2e.items():
        key = {"cpu-decode": "cpu_decode_gpu_model"}.get(way, way).replace("-", "_")
        for b, t in per.items():
            out[f"{key}_b{b}_frames_s"] = round(b * 1000 / t, 1)
    gpu, best = e2e["e2e-gpu"], e2e["e2e-gpu-overlap"]
    for b in gpu:
        out[f"e2e_vs_model_only_b{b}"] = round(e2e["model-only"][b] / best[b], 3)
        out[f"e2e_vs_cpu_decode_b{b}"] = round(e2e["cpu-decode"][b] / best[b], 3)
    top = max(gpu)
    if 1 in gpu and top != 1:
        out[f"e2e_b{top}_vs_b1"] = round((top / best[top]) / (1 / best[1]), 2)
    return out
