"""History storage benchmark on the real local services (`harclip services up`).

    python -m bench.storage [--loops 4] [--fps 10] [--no-photos]

The sample videos (each played --loops times at --fps as a live camera stream, capture times
spaced as a camera would) and the 600 sample photos (one upload job), through the real worker
with the ViT-B/32-shaped random bundle (state/bench-vitb32-bundle), twice: every embedding stored
(`keyframes` off) and keyframes only (the defaults). Measured in Elasticsearch after a force-merge
to one segment:
  kb_per_frame      store bytes / frames, keyframes only (goal <= 0.6 KB)
  kb_per_frame_all  the same with every embedding stored
  thumb_kb_per_frame  keyframe thumbnails in the object store (their objects' bytes, listed)
                    / frames, keyframes only: next to kb_per_frame, the history's bytes per frame
                    in the two stores
  recall_at_10      for a fixed list of text queries: the share of the all-frames top 10 whose
                    frame (or its keyframe) is in the keyframe top 10 (goal >= 0.9)
and a sweep of the keyframe settings, replayed offline on the stored embeddings (share of
keyframes and recall@10 per setting), which is how the defaults were chosen.
The last stdout line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from rich.console import Console
from rich.table import Table

from bench import harness
from bench._pipeline_run import cleanup, ensure_bundle, scoped, worker
from consumers.keyframes import KeyframePolicy
from harclip.config import Settings, load_settings
from harclip.io.es import make_es
from harclip.io.indices import EMBEDDING, EmbeddingSpace, space_pattern
from harclip.io.kafka import make_producer, send_frame
from harclip.io.topics import ensure_topics
from harclip.labels import HAR_CLASSES
from harclip.messages import Frame, new_frame_id, now_ms
from harclip.model.bundle import Bundle
from producers.frames import encode_jpeg
from producers.upload import image_jpeg

ROOT = harness.ROOT
console = Console(stderr=True)
QUERIES = [f"a photo of a person {c.replace('_', ' ')}." for c in HAR_CLASSES] + [
    "someone riding a bike", "a crowd of people", "a person alone in a room",
    "people sitting at a table", "a person with a phone",
]  # fmt: skip
SWEEP = [(d, e) for d in (0.005, 0.01, 0.015, 0.02, 0.03, 0.05, 0.1) for e in (5.0, 10.0, 30.0)]


def video_frames(path: Path, fps: float, loops: int) -> list[tuple[int, bytes]]:
    """(ms offset, JPEG) of `path` sampled at `fps`, played `loops` times end to end."""
    cap = cv2.VideoCapture(str(path))
    native = cap.get(cv2.CAP_PROP_FPS) or 25.0
    step = max(1, round(native / fps))
    jpegs = []
    i = 0
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        if i % step == 0:
            jpegs.append(encode_jpeg(bgr))
        i += 1
    cap.release()
    period = 1000.0 / fps
    return [(round(n * period), j) for n, j in enumerate(jpegs * loops)]


async def run_once(s: Settings, frames: list[tuple[str, int, bytes]], live: set[str]) -> float:
    """Send every frame through a real worker; seconds until all were acknowledged by every sink.
    `frames`: (stream id, captured_at ms, JPEG)."""
    await ensure_topics(s.kafka)
    async with worker(s) as w:
        p = make_producer(s.kafka, role="bulk")
        await p.start()
        start = time.perf_counter()
        seqs: dict[str, int] = {}
        for stream, at, data in frames:
            seq = seqs[stream] = seqs.get(stream, -1) + 1
            topic = s.kafka.topics.frames if stream in live else s.kafka.topics.uploads
            await send_frame(p, topic, Frame(new_frame_id(at), stream, seq, at, data))
        await p.flush()
        await p.stop()
        await w.wait_for(lambda: w.metrics.total("harclip_frames_predicted") >= len(frames), 1800)
        return time.perf_counter() - start


async def store_bytes(s: Settings) -> tuple[int, int]:
    """(store bytes, documents) of the predictions alias after merging to one segment."""
    es = make_es(s.elasticsearch)
    try:
        alias = s.elasticsearch.predictions_index
        await es.indices.refresh(index=alias)
        await es.indices.forcemerge(index=alias, max_num_segments=1, wait_for_completion=True)
        stats = await es.indices.stats(index=alias, metric="store,docs")
        total = stats["_all"]["primaries"]
        return int(total["store"]["size_in_bytes"]), int(total["docs"]["count"])
    finally:
        await es.close()


async def stored(s: Settings, space: EmbeddingSpace) -> list[dict[str, Any]]:
    """Every document of `space` with its embedding (if any, as a unit float32 vector), in
    capture order per stream."""
    es = make_es(s.elasticsearch)
    docs: list[dict[str, Any]] = []
    try:
        after = None
        while True:
            resp = await es.search(
                index=space_pattern(s.elasticsearch, space), size=1000,
                sort=[{"stream_id": "asc"}, {"captured_at": "asc"}, {"frame_id": "asc"}],
                search_after=after, source={"exclude_vectors": False},
            )  # fmt: skip
            hits = resp["hits"]["hits"]
            for h in hits:  # stored as int8: back to unit float vectors (cosine = dot product)
                doc = h["_source"]
                if EMBEDDING in doc:
                    v = np.asarray(doc[EMBEDDING], np.float32)
                    doc[EMBEDDING] = v / max(float(np.linalg.norm(v)), 1e-12)
                docs.append(doc)
            if len(hits) < 1000:
                return docs
            after = hits[-1]["sort"]
    finally:
        await es.close()


async def thumbnail_bytes(s: Settings, docs: list[dict[str, Any]]) -> int:
    """The object-store bytes of the keyframe thumbnails `docs` reference (0 without a store)."""
    if not s.objects.enabled:
        return 0
    from harclip.io.objects import ObjectStore

    keys = {d["thumbnail"] for d in docs if d.get("thumbnail")}
    store = ObjectStore(s.objects)
    await store.start()
    try:
        sizes = {o.key: o.size for o in await store.list("thumbs/")}
        total = sum(sizes.get(k, 0) for k in keys)
        await store.delete(sorted(keys))  # the run's own objects
        return total
    finally:
        await store.close()


def top10(queries: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """Indices of the 10 rows of `vectors` nearest each query (cosine; rows unit length)."""
    scores = queries @ vectors.T  # [Q, D] @ [D, N] -> [Q, N]
    return np.argsort(-scores, axis=1)[:, :10]


def recall(all_docs: list[dict[str, Any]], keyframe_of: list[int], queries: np.ndarray) -> float:
    """Share of the all-frames top 10 (per query) whose keyframe is in the keyframe top 10."""
    vectors = np.asarray([d[EMBEDDING] for d in all_docs], np.float32)
    keys = sorted(set(keyframe_of))
    full = top10(queries, vectors)
    by_key = top10(queries, vectors[keys])
    found = 0
    for q in range(len(queries)):
        chosen = {keys[i] for i in by_key[q]}
        found += sum(keyframe_of[i] in chosen for i in full[q])
    return found / full.size


def replay(docs: list[dict[str, Any]], distance: float, every_s: float) -> list[int]:
    """Per document (in stream, capture order), the index of the keyframe `KeyframePolicy`
    would choose for it."""
    policy = KeyframePolicy(distance, every_s)
    index = {d["frame_id"]: i for i, d in enumerate(docs)}
    return [
        index[policy.decide(d["stream_id"], d["frame_id"], d["captured_at"], d["label"],
                            np.asarray(d[EMBEDDING], np.float32))]
        for d in docs
    ]  # fmt: skip


def sample_frames(data: Path, args: argparse.Namespace) -> tuple[list[tuple[str, int, bytes]], int]:
    """(stream id, capture ms, JPEG) of every frame to send, and the number of videos: each
    sample video at --fps --loops times, and (unless --no-photos) the sample photos as uploads.
    `fail`s (exit 2) when there is no frame at all."""
    t0 = now_ms()
    frames: list[tuple[str, int, bytes]] = []
    videos = sorted((data / "video").glob("*.mp4"))
    for n, video in enumerate(videos):
        frames += [(f"cam-{n}", t0 + ms, j) for ms, j in video_frames(video, args.fps, args.loops)]
    if not args.no_photos:
        photos = sorted((data / "har-sample").glob("*/*.jpg"))
        frames += [(f"upload-{i // 100}", t0 + 200 * i, image_jpeg(p, 224, 40_000_000))
                   for i, p in enumerate(photos)]  # fmt: skip
    if not frames:
        harness.fail(
            f"no frames to send: no {data / 'video'}/*.mp4 that OpenCV can read"
            + ("" if args.no_photos else f" and no {data / 'har-sample'}/*/*.jpg")
        )
    return frames, len(videos)


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    base = load_settings()
    data = harness.sample_data(args.data)
    frames, videos = sample_frames(data, args)
    bundle_path = ensure_bundle(ROOT / "state" / "bench-vitb32-bundle", data)
    bundle = Bundle.load(bundle_path)
    m = bundle.manifest
    space = EmbeddingSpace(m.name, str(m.version), m.embed_dim)
    live = {f"cam-{n}" for n in range(videos)}
    console.print(f"{len(frames)} frames ({sum(f[0] in live for f in frames)} video) "
                  f"through a {m.embed_dim}-d bundle")  # fmt: skip
    out: dict[str, Any] = {"frames": len(frames)}
    runs: dict[str, Settings] = {}
    try:
        for name, on in (("all", False), ("keyframes", True)):
            s = scoped(base, bundle_path, max_age_ms=10**9)  # a benchmark replays old captures
            s = s.model_copy(update={"elasticsearch": s.elasticsearch.model_copy(
                update={"keyframes": on})})  # fmt: skip
            runs[name] = s
            console.print(f"[{name}] through the worker ...")
            seconds = await run_once(s, frames, live)
            size, docs = await store_bytes(s)
            out[f"kb_per_frame{'' if on else '_all'}"] = round(size / docs / 1024, 3)
            out[f"seconds_{name}"] = round(seconds, 1)
            out[f"docs_{name}"] = docs
            console.print(f"{name}: {size / docs / 1024:.3f} KB/frame, {seconds:.0f} s")
        encoder = bundle.text_encoder()
        queries = encoder.encode(QUERIES)  # [Q, D]
        all_docs = await stored(runs["all"], space)
        # the two runs sent the same frames under new frame ids: match them by (stream, seq)
        key_run = await stored(runs["keyframes"], space)
        thumbs = await thumbnail_bytes(runs["keyframes"], key_run)
        out["thumb_kb_per_frame"] = round(thumbs / max(1, len(key_run)) / 1024, 3)
        out["thumbnails"] = sum(1 for d in key_run if d.get("thumbnail"))
        where = {d["frame_id"]: (d["stream_id"], d["seq"]) for d in key_run}
        key_of = {(d["stream_id"], d["seq"]): where[d["keyframe_id"]] for d in key_run}
        index = {(d["stream_id"], d["seq"]): i for i, d in enumerate(all_docs)}
        actual = [index[key_of[(d["stream_id"], d["seq"])]] for d in all_docs]
        out["keyframe_share"] = round(len(set(actual)) / len(actual), 4)
        out["recall_at_10"] = round(recall(all_docs, actual, queries), 4)
        sweep = []
        for distance, every in SWEEP:
            chosen = replay(all_docs, distance, every)
            sweep.append({"distance": distance, "every_s": every,
                          "keyframe_share": round(len(set(chosen)) / len(chosen), 4),
                          "recall_at_10": round(recall(all_docs, chosen, queries), 4)})  # fmt: skip
        out["sweep"] = sweep
        s = base.elasticsearch
        out["defaults"] = {"distance": s.keyframe_distance, "every_s": s.keyframe_every_s}
    finally:
        await cleanup(base)
    return out


def report(out: dict[str, Any]) -> None:
    t = Table(title=f"Elasticsearch history, {out['frames']} frames (ViT-B/32 shape, 512-d)")
    for col in ("storage", "KB / frame", "keyframes", "recall@10"):
        t.add_column(col, justify="right")
    t.add_row("every embedding", f"{out['kb_per_frame_all']:.3f}", "100 %", "1.000")
    t.add_row(f"keyframes (distance {out['defaults']['distance']}, every "
              f"{out['defaults']['every_s']:g} s)", f"{out['kb_per_frame']:.3f}",
              f"{100 * out['keyframe_share']:.1f} %", f"{out['recall_at_10']:.3f}")  # fmt: skip
    Console().print(t)
    if out.get("thumbnails"):
        console.print(f"keyframe thumbnails: {out['thumbnails']} objects, "
                      f"{out['thumb_kb_per_frame']:.3f} KB per frame in the object store, next to "
                      f"{out['kb_per_frame']:.3f} KB per frame in Elasticsearch")  # fmt: skip
    sweep = Table(title="keyframe settings replayed on the stored embeddings")
    for col in ("distance", "every s", "keyframes", "recall@10"):
        sweep.add_column(col, justify="right")
    for row in out["sweep"]:
        sweep.add_row(
            str(row["distance"]),
            f"{row['every_s']:g}",
            f"{100 * row['keyframe_share']:.1f} %",
            f"{row['recall_at_10']:.3f}",
        )
    Console().print(sweep)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--loops", type=int, default=4, help="plays of each sample video")
    p.add_argument("--fps", type=float, default=10.0, help="video sampling rate, frames/s")
    p.add_argument("--no-photos", action="store_true", help="videos only")
    p.add_argument("--data", type=Path,
                   help="the shared sample data (default: HARCLIP_SAMPLE_DATA)")  # fmt: skip
    args = p.parse_args(argv)
    out = asyncio.run(main_async(args))
    report(out)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
