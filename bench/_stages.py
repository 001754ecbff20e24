"""Per-frame cost by stage from a cProfile of the worker's event-loop thread (bench.pipeline).

cProfile sees only the thread it runs in: the worker's event loop, where Kafka fetch and
produce, Redis, Elasticsearch, JSON, keyframe selection and metrics run. Decoding and the engine
run in their own threads; bench.pipeline times those directly. Each function's own time
(`tottime`, not cumulative: coroutines are entered once per resumption) goes to the first stage
whose pattern its file path holds; the rest is "other (asyncio, worker glue)".
"""

from __future__ import annotations

import pstats
import time
from pathlib import Path

from harclip.model.preprocess import preprocess_batch

STAGES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Kafka (aiokafka: fetch, produce, commit)", ("aiokafka", "kafka/")),
    ("Redis", ("redis/",)),
    ("Elasticsearch (bulk)", ("elasticsearch", "elastic_transport", "httpx", "httpcore")),
    (
        "object store (keyframe thumbnail uploads)",
        ("aiohttp", "yarl", "multidict", "harclip/io/s3put", "consumers/thumbnails"),
    ),
    ("JSON and messages (pydantic, json)", ("pydantic", "json/", "orjson", "harclip/messages")),
    ("keyframe selection", ("consumers/keyframes",)),
    ("metrics (prometheus_client)", ("prometheus_client",)),
    ("decode hand-off (loop side)", ("consumers/work",)),
    ("worker (consumers/)", ("consumers/",)),
    ("socket send/recv (any client)", ("method 'send'", "method 'recv'", "method 'sendall'")),
    (
        "thread hand-offs (executor submit, futures)",
        ("_queue.SimpleQueue", "futures/thread.py", "asyncio/futures.py"),
    ),
    (
        "idle: epoll wait (engine and decode threads work meanwhile)",
        ("method 'poll'", "method 'select'", "selectors.py"),
    ),
)
OTHER = "other (asyncio, harclip glue)"


def by_stage(stats: pstats.Stats) -> dict[str, float]:
    """Own seconds per stage (STAGES order, then OTHER)."""
    out = {name: 0.0 for name, _ in STAGES} | {OTHER: 0.0}
    for (file, _line, fn), row in stats.stats.items():  # type: ignore[attr-defined]
        where = f"{file}:{fn}"
        name = next((n for n, pats in STAGES if any(p in where for p in pats)), OTHER)
        out[name] += row[2]  # tottime
    return out


def per_frame_us(profile: Path, frames: int) -> dict[str, float]:
    """µs of the worker's event-loop thread per frame, by stage, from a cProfile dump."""
    stats = pstats.Stats(str(profile))
    return {k: round(v * 1e6 / max(frames, 1), 1) for k, v in by_stage(stats).items()}


def decode_us(photos: list[bytes], size: int, max_pixels: int) -> float:
    """µs to decode and resize one photo (as the worker's decode threads do), one thread."""
    preprocess_batch(photos[:8], size, max_pixels=max_pixels)  # warm-up
    t = time.perf_counter()
    preprocess_batch(photos, size, max_pixels=max_pixels)
    return (time.perf_counter() - t) * 1e6 / len(photos)
