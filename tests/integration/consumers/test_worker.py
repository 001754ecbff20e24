"""Worker policies on the real services: poison frames to the DLQ, age-based dropping of live
frames (never uploads), head updates from the control topic, start-up errors."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
from aiokafka import AIOKafkaProducer

from harclip.control import HEAD_KEY, publish
from harclip.io import search
from harclip.io.es import make_es
from harclip.io.indices import EmbeddingSpace
from harclip.io.kafka import send_frame
from harclip.messages import Frame, Prediction, new_frame_id, now_ms
from harclip.model.bundle import Bundle
from harclip.model.head import Head
from tests.support.kafka import header, read_topic
from tests.support.scoped import Unique
from tests.support.worker import (
    dropped,
    failed,
    predicted,
    producer,
    running_worker,
    worker_settings,
)

TIMEOUT_S = 90.0


def frame(stream: str, seq: int, data: bytes, *, age_ms: int = 0) -> Frame:
    at = now_ms() - age_ms
    return Frame(new_frame_id(at), stream, seq, at, data)


async def send(p: AIOKafkaProducer, topic: str, f: Frame) -> None:
    """`f` to `topic` (key = stream id, Frame headers), acknowledged."""
    await (await send_frame(p, topic, f))


def huge_png() -> bytes:
    """A valid PNG header claiming 100000 × 100000 pixels (a decompression bomb)."""
    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return (b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + chunk
            + struct.pack(">I", zlib.crc32(chunk)))  # fmt: skip


async def test_poison_frames_go_to_the_dlq_and_the_worker_goes_on(
    unique: Unique, tiny_bundle: Path, sample_photos: list[Path]
) -> None:
    s = worker_settings(unique.settings, tiny_bundle, max_age_ms=60_000)
    t = s.kafka.topics
    good = [p.read_bytes() for p in sample_photos[:12]]
    rng = np.random.default_rng(1)
    poison = {
        "truncated": frame("cam", 100, good[0][: len(good[0]) // 2]),
        "random": frame("cam", 101, rng.integers(0, 256, 4000, dtype=np.uint8).tobytes()),
        "huge": frame("cam", 103, huge_png()),
    }
    async with running_worker(s) as worker, producer(s) as p:
        for i, data in enumerate(good):
            await send(p, t.frames if i % 2 else t.uploads, frame("cam", i, data))
        for f in poison.values():
            await send(p, t.frames, f)
        empty = frame("cam", 102, b"x")
        await p.send_and_wait(t.frames, b"", key=b"cam", headers=empty.headers())
        await p.send_and_wait(t.uploads, good[1], key=b"no-headers")
        await worker.wait_for(lambda: failed(worker) >= 5 and predicted(worker) >= 12, TIMEOUT_S)
        # still alive: one more good frame gets its prediction
        await send(p, t.frames, frame("cam", 200, good[2]))
        await worker.wait_for(lambda: predicted(worker) >= 13, TIMEOUT_S)
        assert failed(worker) == 5

    dlq = await read_topic(s, t.dlq)
    reasons = {header(r, "seq") or "no-headers": header(r, "error") or "" for r in dlq}
    assert reasons.keys() == {"100", "101", "102", "103", "no-headers"}
    assert reasons["100"].startswith("undecodable: truncated JPEG")
    assert reasons["101"].startswith("undecodable: not an image")
    assert reasons["102"].startswith("malformed: empty frame")
    assert reasons["103"].startswith("undecodable: image too large")
    assert reasons["no-headers"].startswith("malformed: missing header")
    by_seq = {header(r, "seq"): r for r in dlq}
    assert by_seq["100"].value == poison["truncated"].data  # the original bytes ...
    assert header(by_seq["100"], "frame_id") == poison["truncated"].frame_id  # ... and headers
    preds = [Prediction.from_json(r.value) for r in await read_topic(s, t.predictions)]
    assert sorted(p.seq for p in preds) == [*range(12), 200]


async def test_stale_live_frames_are_dropped_and_counted_uploads_never(
    unique: Unique, tiny_bundle: Path, sample_photos: list[Path]
) -> None:
    s = worker_settings(unique.settings, tiny_bundle, max_age_ms=2_000)
    t = s.kafka.topics
    data = sample_photos[0].read_bytes()
    async with running_worker(s) as worker, producer(s) as p:
        for i in range(6):  # 10 s old: stale live frames, and uploads of the same age
            await send(p, t.frames, frame("live", i, data, age_ms=10_000))
            await send(p, t.uploads, frame("job", i, data, age_ms=10_000))
        await send(p, t.frames, frame("live", 6, data))
        await worker.wait_for(lambda: dropped(worker) + predicted(worker) >= 13, TIMEOUT_S)
        assert dropped(worker) == 6 and predicted(worker) == 7
        metric = worker.metrics.registry.get_sample_value(
            "harclip_frames_dropped_total", {"reason": "stale"}
        )
        assert metric == 6
    preds = [Prediction.from_json(r.value) for r in await read_topic(s, t.predictions)]
    assert sorted((p.stream_id, p.seq) for p in preds) == [("job", i) for i in range(6)] + [
        ("live", 6)
    ]


async def test_head_update_on_the_control_topic_reaches_predictions(
    unique: Unique, tiny_bundle: Path, sample_photos: list[Path]
) -> None:
    s = worker_settings(unique.settings, tiny_bundle, max_age_ms=60_000)
    t = s.kafka.topics
    data = sample_photos[0].read_bytes()
    async with running_worker(s) as worker, producer(s) as p:
        await send(p, t.frames, frame("cam", 0, data))
        await worker.wait_for(lambda: predicted(worker) >= 1, TIMEOUT_S)
        old = worker.heads.head
        rng = np.random.default_rng(0)
        w = rng.standard_normal((old.embed_dim, 2)).astype(np.float32)
        new = Head(("juggling", "skating"), w, np.zeros(2, np.float32), 50.0, old.version + 1)
        await publish(p, s.kafka, HEAD_KEY, new.to_control())
        await worker.wait_for(lambda: worker.heads.head.version == new.version, TIMEOUT_S)
        await send(p, t.frames, frame("cam", 1, data))
        await worker.wait_for(lambda: predicted(worker) >= 2, TIMEOUT_S)
        series = {  # the label counter keeps the labels served now, not the old head's
            x.labels["label"]
            for m in worker.metrics.registry.collect()
            if m.name == "harclip_predicted_labels"
            for x in m.samples
        }
    preds = {p.seq: p for p in (Prediction.from_json(r.value)
                                for r in await read_topic(s, t.predictions))}  # fmt: skip
    assert preds[0].model.head_version == old.version and preds[0].label in old.labels
    assert preds[1].model.head_version == new.version
    assert preds[1].label in new.labels and {x.label for x in preds[1].top_k} <= set(new.labels)
    assert preds[1].label in series and series <= set(new.labels)


async def test_a_model_upgrade_writes_its_own_indices_with_no_manual_step(
    unique: Unique, tiny_bundle: Path, sample_photos: list[Path], tmp_path: Path
) -> None:
    """A worker with a bundle of another embedding size (a model upgrade) starts and writes to
    its own space's indices; history through the alias spans both models; vector search stays
    in one space."""
    from harclip.clip.export import ExportOptions, export_bundle
    from harclip.clip.init import init_model
    from harclip.clip.load import load_clip

    model = init_model(tmp_path / "clip24", "tiny", seed=1, embed_dim=24)
    options = ExportOptions(formats=("onnx",), name="tiny-upgraded", version="2")
    upgraded = export_bundle(load_clip(model), tmp_path / "b24", options).path
    data = sample_photos[0].read_bytes()
    spaces = []
    for seq, bundle in enumerate((tiny_bundle, upgraded)):
        s = worker_settings(unique.settings, bundle)
        async with running_worker(s) as worker, producer(s) as p:
            await send(p, s.kafka.topics.uploads, frame("cam", seq, data))
            await worker.wait_for(lambda w=worker: predicted(w) >= 1, TIMEOUT_S)
            m = worker.bundle.manifest
            spaces.append(EmbeddingSpace(m.name, str(m.version), m.embed_dim))
    assert [sp.dims for sp in spaces] == [32, 24]
    es = make_es(s.elasticsearch)
    try:
        await es.indices.refresh(index=s.elasticsearch.predictions_index)
        page = await search.history(es, s.elasticsearch, stream_id="cam", order="asc")
        assert [(p.seq, p.model.name) for p in page.items] == [
            (0, Bundle.load(tiny_bundle).manifest.name), (1, "tiny-upgraded"),
        ]  # fmt: skip
        for space, seq in zip(spaces, (0, 1), strict=True):
            query = np.ones(space.dims, np.float32) / np.sqrt(space.dims)
            hits = await search.knn(es, s.elasticsearch, space, query, k=5)
            assert [h.prediction.seq for h in hits] == [seq]
    finally:
        await es.close()
