"""The evidence step on real Kafka, Elasticsearch, Redis and the S3 server: real JPEG frames of
a sample video on the frames topic and scripted predictions of the same capture times; the
republished segment.end carries a snapshot (the frame at peak_at), a thumbnail and a clip that
decodes to pre-roll + segment + post-roll; frames gone from Kafka give `frames_expired`; after a
SIGKILL every event gets its evidence and every object belongs to an event; with the object
store unreachable events still flow and evidence catches up once it is back."""

from __future__ import annotations

import asyncio
import base64
import http.server
import json
import os
import socket
import threading
from pathlib import Path
from urllib.parse import urlsplit

import cv2
import numpy as np
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import RecordsToDelete

from harclip.config import Settings, StreamSettings
from harclip.io.es import make_es
from harclip.io.events import read_events
from harclip.io.kafka import make_admin, make_consumer
from harclip.io.objects import ObjectStore
from harclip.io.store import make_redis
from harclip.messages import Event, Frame, Prediction
from stream.evidence.build import need
from stream.evidence.frames import partition_of
from tests.support.events import (
    PARTITIONS,
    T0,
    app_env,
    events,
    prediction,
    send,
    start_app,
    stop_app,
)
from tests.support.scoped import Unique

FPS_MS = 100  # frames every 100 ms; predictions every 200 ms
PEAK = T0 + 2000  # the running segment's best prediction


def video_frames(stream_id: str, first: int, last: int) -> list[Frame]:
    """JPEG frames of the sample video (looped) captured every FPS_MS from `first` to `last`."""
    video = sorted(Path(os.environ["HARCLIP_SAMPLE_DATA"], "video").glob("*.mp4"))[0]
    cap = cv2.VideoCapture(str(video))
    out = []
    for i, at in enumerate(range(first, last + 1, FPS_MS)):
        ok, img = cap.read()
        if not ok:  # the video ended: again from its start
            cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, img = cap.read()
        assert ok, f"{video} does not decode"
        jpeg = bytes(cv2.imencode(".jpg", cv2.resize(img, (320, 180)))[1])
        out.append(Frame(f"{stream_id}-f{i:05d}", stream_id, i, at, jpeg))
    cap.release()
    return out


def predictions(stream_id: str) -> list[Prediction]:
    """4 s of running (peak at PEAK), then 4 s of fighting, at 5 fps."""
    out = []
    for i in range(40):
        at = T0 + i * 200
        label, other = ("running", "fighting") if i < 20 else ("fighting", "running")
        score = 0.99 if at == PEAK else 0.7
        out.append(prediction(stream_id, i, at, {label: score, other: 0.1, "sitting": 0.05}))
    return out


async def send_frames(p: AIOKafkaProducer, topic: str, frames: list[Frame]) -> None:
    for f in frames:
        await p.send(
            topic, f.data, key=f.stream_id.encode(), headers=f.headers(), timestamp_ms=f.captured_at
        )  # a live camera sends as it captures
    await p.flush()


def _with_evidence(stream_id: str, *types: str):  # type: ignore[no-untyped-def]
    """Until an evidence copy of each of `types` (default segment.end) of the stream is there."""
    wanted = set(types or ("segment.end",))
    return lambda es: (
        wanted <= {e.type for e in es if e.stream_id == stream_id and e.evidence is not None}
    )


def _decode_all(data: bytes, path: Path) -> list[np.ndarray]:
    path.write_bytes(data)
    cap = cv2.VideoCapture(str(path))
    out = []
    while (got := cap.read())[0]:
        out.append(got[1])
    cap.release()
    return out


async def test_a_segment_end_gets_its_snapshot_thumbnail_and_clip(
    unique: Unique, producer: AIOKafkaProducer, tmp_path: Path
) -> None:
    s = unique.settings
    sid = "cam-ev"
    frames = video_frames(sid, T0 - 2000, T0 + 10_000)
    await send_frames(producer, s.kafka.topics.frames, frames)
    await send(producer, s, predictions(sid))
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules: [{name: fight, labels: [fighting], min_score: 0.5, for_seconds: 1}]")
    hook, received = _receiver()
    env = app_env(s, tmp_path / "app", pre_roll_s=1, post_roll_s=1, evidence_wait_s=0,
                  evidence=True, rules=rules, webhooks=json.dumps([hook]),
                  webhook_allow_loopback="true", webhook_thumbnail="true",
                  webhook_thumbnail_wait_s=60)  # fmt: skip
    app = await start_app(env)
    store = ObjectStore(s.objects)
    await store.start()
    es = make_es(s.elasticsearch)
    try:
        got = await events(s, _with_evidence(sid, "segment.end", "alert"), timeout_s=120)
        end = next(e for e in got if e.type == "segment.end" and e.evidence is not None)
        first = next(e for e in got if e.event_id == end.event_id)
        assert first.evidence is None and first.peak_at == PEAK == end.peak_at
        ev = end.evidence
        assert ev is not None and ev.missing is None and ev.snapshot and ev.clip and ev.thumbnail
        assert end.start == T0 and end.end is not None
        window = [f for f in frames if end.start - 1000 <= f.captured_at <= end.end + 1000]
        # the snapshot is the frame at peak_at, as captured
        snap = await store.get(ev.snapshot)
        assert snap is not None and snap.content_type == "image/jpeg"
        assert snap.data == next(f for f in frames if f.captured_at == PEAK).data
        thumb = await store.get(ev.thumbnail)
        assert thumb is not None
        small = cv2.imdecode(np.frombuffer(thumb.data, np.uint8), cv2.IMREAD_COLOR)
        assert max(small.shape[:2]) == 160
        # the clip: pre-roll + segment + post-roll, its first frame the pre-roll's first
        clip = await store.get(ev.clip)
        assert clip is not None and clip.content_type == "video/mp4"  # CLIP_CODEC h264
        decoded = _decode_all(clip.data, tmp_path / "clip.mp4")
        assert ev.frames == len(window), (ev, len(decoded))
        assert abs(len(decoded) - len(window)) <= 1
        assert ev.first_captured_at == window[0].captured_at == end.start - 1000
        jpeg0 = cv2.imdecode(np.frombuffer(window[0].data, np.uint8), cv2.IMREAD_COLOR)
        assert np.abs(decoded[0].astype(int) - jpeg0.astype(int)).mean() < 12
        # the events index has the evidence (the copy overwrote the document)
        index = f"{s.elasticsearch.events_index}*"
        await es.indices.refresh(index=index)
        hits = (await es.search(index=index, query={"ids": {"values": [end.event_id]}}))["hits"]
        assert hits["total"]["value"] == 1
        assert hits["hits"][0]["_source"]["evidence"]["clip"] == ev.clip
        # Redis: the copy is added once after the first entry (readers keep the newest)
        entries = await _redis_entries(s, sid, end.event_id)
        assert [e.evidence is not None for e in entries] == [False, True]
        # the alert: a clip from its start - pre-roll to its firing time + post-roll
        alert = next(e for e in got if e.type == "alert" and e.evidence is not None)
        assert alert.evidence is not None and alert.evidence.clip and alert.evidence.snapshot
        assert alert.start is not None and alert.end is not None
        assert alert.evidence.first_captured_at == alert.start - 1000
        assert alert.evidence.last_captured_at == alert.end + 1000
        # the segment.start got its snapshot too
        start = [e for e in got if e.type == "segment.start" and e.evidence is not None]
        assert any(e.evidence and e.evidence.snapshot and not e.evidence.clip for e in start)
        # the webhook got the alert once, its thumbnail inline (WEBHOOK_THUMBNAIL)
        assert alert.evidence.thumbnail is not None
        alert_thumb = await store.get(alert.evidence.thumbnail)
        assert alert_thumb is not None
        for _ in range(600):  # delivered in the background: wait for it
            if received:
                break
            await asyncio.sleep(0.1)
        assert [b["event_id"] for b in received] == [alert.event_id]
        assert base64.b64decode(str(received[0]["thumbnail_jpeg"])) == alert_thumb.data
        assert str(received[0]["clip_url"]).endswith(f"/events/{alert.event_id}/clip")
    finally:
        await stop_app(app)
        await store.close()
        await es.close()


def _receiver() -> tuple[str, list[dict[str, object]]]:
    """A webhook URL on this machine and the JSON bodies POSTed to it (served by a thread)."""
    received: list[dict[str, object]] = []

    class Hook(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}/hook", received


async def test_frames_gone_from_kafka_give_frames_expired(
    unique: Unique, producer: AIOKafkaProducer, tmp_path: Path
) -> None:
    s = unique.settings
    sid = "cam-gone"
    topic = s.kafka.topics.frames
    await send_frames(producer, topic, video_frames(sid, T0 - 2000, T0 + 10_000))
    tp = TopicPartition(topic, partition_of(sid, PARTITIONS))
    admin = make_admin(s.kafka)
    await admin.start()
    try:  # retention passed: Kafka deleted everything this partition held
        await admin.delete_records({tp: RecordsToDelete(await _end_offset(s, tp))})
    finally:
        await admin.close()
    await send(producer, s, predictions(sid))
    app = await start_app(app_env(s, tmp_path / "app", pre_roll_s=1, post_roll_s=1,
                                  evidence_wait_s=0, evidence=True))  # fmt: skip
    try:
        got = await events(s, _with_evidence(sid), timeout_s=120)
        end_ev = next(e for e in got if e.type == "segment.end" and e.evidence is not None)
        assert end_ev.evidence is not None and end_ev.evidence.missing == "frames_expired"
        assert end_ev.evidence.clip is None and end_ev.evidence.snapshot is None
    finally:
        await stop_app(app)


async def _redis_entries(s: Settings, sid: str, event_id: str) -> list[Event]:
    """The stream's Redis entries of `event_id`, once the evidence copy is there."""
    r = make_redis(s.redis)
    try:
        async with asyncio.timeout(60):
            while True:
                got = [e for _, e in await read_events(r, s.redis, [sid], count=1000)
                       if e.event_id == event_id]  # fmt: skip
                if any(e.evidence is not None for e in got):
                    return got
                await asyncio.sleep(0.1)  # polling a condition
    finally:
        await r.aclose()


async def _end_offset(s: Settings, tp: TopicPartition) -> int:
    c = make_consumer(s.kafka, group_id=None)
    await c.start()
    try:
        return (await c.end_offsets([tp]))[tp]
    finally:
        await c.stop()


def _all_done(stream_id: str):  # type: ignore[no-untyped-def]
    """Until the stream's fighting segment ended and every event that needs evidence has its
    evidence copy."""
    stream = StreamSettings()

    def done(es: list[Event]) -> bool:
        mine = [e for e in es if e.stream_id == stream_id]
        if not any(e.type == "segment.end" and e.label == "fighting" for e in mine):
            return False
        wanted = {e.event_id for e in mine if e.evidence is None and need(e, stream)}
        return wanted <= {e.event_id for e in mine if e.evidence is not None}

    return done


async def test_after_a_sigkill_every_event_has_its_evidence_and_no_object_is_orphaned(
    unique: Unique, producer: AIOKafkaProducer, tmp_path: Path
) -> None:
    s = unique.settings
    sid = "cam-kill"
    await send_frames(producer, s.kafka.topics.frames, video_frames(sid, T0 - 2000, T0 + 10_000))
    await send(producer, s, predictions(sid))
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules: [{name: fight, labels: [fighting], min_score: 0.5, for_seconds: 1}]")
    env = app_env(s, tmp_path / "app", pre_roll_s=1, post_roll_s=1, evidence_wait_s=0,
                  evidence=True, rules=rules, idle_timeout_s=2)  # fmt: skip
    app = await start_app(env)
    try:  # killed once the first evidence is written, others may be half done
        await app.wait_metric("harclip_stream_evidence_written_total", 1, 'type="segment.start"')
    finally:
        await stop_app(app, kill=True)
    app = await start_app(env)
    store = ObjectStore(s.objects)
    await store.start()
    try:
        got = await events(s, _all_done(sid), timeout_s=120)
        copies = [e.evidence for e in got if e.stream_id == sid and e.evidence is not None]
        referenced = {k for ev in copies if ev is not None
                      for k in (ev.snapshot, ev.thumbnail, ev.clip) if k}  # fmt: skip
        stored = {o.key for o in await store.list("evidence/")}
        assert stored == referenced  # every reference has its object, no object without one
        assert all(ev is not None and ev.missing is None for ev in copies)
    finally:
        await stop_app(app)
        await store.close()


class _Gate:
    """A TCP forwarder to the S3 server that is closed (connection refused) until `open`."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()  # nothing listens there until `open`
        self._server: asyncio.Server | None = None

    async def open(self) -> None:
        self._server = await asyncio.start_server(self._pipe, "127.0.0.1", self.port)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()

    async def _pipe(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        tr, tw = await asyncio.open_connection(*self.target)

        async def copy(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            finally:
                dst.close()

        await asyncio.gather(copy(r, tw), copy(tr, w), return_exceptions=True)


async def test_events_flow_while_the_object_store_is_down_and_evidence_catches_up(
    unique: Unique, producer: AIOKafkaProducer, tmp_path: Path
) -> None:
    s = unique.settings
    sid = "cam-down"
    url = urlsplit(s.objects.url)
    gate = _Gate((url.hostname or "127.0.0.1", url.port or 80))
    down = s.model_copy(update={"objects": s.objects.model_copy(
        update={"url": f"http://127.0.0.1:{gate.port}"})})  # fmt: skip
    await send_frames(producer, s.kafka.topics.frames, video_frames(sid, T0 - 2000, T0 + 10_000))
    await send(producer, s, predictions(sid))
    env = app_env(down, tmp_path / "app", pre_roll_s=1, post_roll_s=1, evidence_wait_s=0,
                  evidence=True)  # fmt: skip
    app = await start_app(env)
    try:
        ends = lambda es: any(e.type == "segment.end" and e.stream_id == sid for e in es)  # noqa: E731
        got = await events(s, ends, timeout_s=120)  # the agents go on
        assert not any(e.evidence is not None for e in got)
        await app.wait_metric("harclip_stream_evidence_errors_total", 1)  # it tried
        await gate.open()  # the store is back
        got = await events(s, _with_evidence(sid), timeout_s=180)
        end = next(e for e in got if e.type == "segment.end" and e.evidence is not None)
        assert end.evidence is not None and end.evidence.clip and end.evidence.missing is None
    finally:
        await stop_app(app)
        await gate.close()
