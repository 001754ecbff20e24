"""The streaming path end to end on the real services: the sample video through the camera
producer and sample photos + video through the upload producer -> a worker -> Kafka predictions,
Redis and Elasticsearch; exactly one document and one Prediction per produced frame."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

from rich.console import Console

from harclip.io import store
from harclip.io.es import make_es
from harclip.messages import Prediction
from producers.camera import CameraOptions, run_camera
from producers.upload import UploadOptions, run_upload
from tests.support.kafka import header, read_topic
from tests.support.scoped import Unique
from tests.support.worker import dropped, failed, predicted, running_worker, worker_settings

TIMEOUT_S = 120.0


async def test_camera_and_upload_frames_end_in_every_sink_exactly_once(
    unique: Unique, tiny_bundle: Path, sample_photos: list[Path], sample_videos: list[Path],
    tmp_path: Path,
) -> None:  # fmt: skip
    s = worker_settings(unique.settings, tiny_bundle, max_batch=8, max_age_ms=60_000)
    video = next(v for v in sample_videos if v.name == "demo_skeleton.mp4")
    photos = sample_photos[::20]  # 30 photos across the classes
    async with running_worker(s) as worker:
        cam = CameraOptions(str(video), "cam-1", fps=10)  # real time: ~2.6 s
        stats, capture = await run_camera(cam, s.kafka, asyncio.Event())
        assert capture.error is None and stats.failed == 0 and stats.sent > 20
        with (tmp_path / "progress.txt").open("w") as progress:
            report = await run_upload(
                UploadOptions(paths=(*photos, video), job_id="job-1", fps=4), s.kafka,
                console=Console(file=progress),
            )  # fmt: skip
        assert not report.errors and report.stats.sent == len(report.frame_ids)

        topics = (s.kafka.topics.frames, s.kafka.topics.uploads)
        produced = {header(r, "frame_id"): r for t in topics for r in await read_topic(s, t)}
        assert len(produced) == stats.sent + report.stats.sent
        await worker.wait_for(lambda: predicted(worker) >= len(produced), TIMEOUT_S)
        assert failed(worker) == 0 and dropped(worker) == 0

    preds = [Prediction.from_json(r.value) for r in await read_topic(s, s.kafka.topics.predictions)]
    counts = Counter(p.frame_id for p in preds)
    assert set(counts) == set(produced) and max(counts.values()) == 1

    es = make_es(s.elasticsearch)
    try:
        index = s.elasticsearch.predictions_index
        await es.indices.refresh(index=index)
        assert (await es.count(index=index))["count"] == len(produced)
        hits = (await es.search(index=index, size=len(produced) + 10, source=["frame_id"],
                                query={"match_all": {}}))["hits"]["hits"]  # fmt: skip
        assert {h["_id"] for h in hits} == set(produced)
        assert all(h["_source"]["frame_id"] == h["_id"] for h in hits)
    finally:
        await es.close()

    r = store.make_redis(s.redis)
    try:
        for stream in ("cam-1", "job-1"):
            last = max((p for p in preds if p.stream_id == stream), key=lambda p: p.seq)
            latest = await store.read_latest(r, s.redis, stream)
            assert latest is not None and latest.frame_id == last.frame_id
            assert await store.read_frame(r, s.redis, stream) == produced[last.frame_id].value
        assert {sid for sid, _ in await store.list_streams(r, s.redis)} == {"cam-1", "job-1"}
    finally:
        await r.aclose()
