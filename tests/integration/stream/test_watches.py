"""Watches in the events app on real Kafka, Redis and Elasticsearch: a WatchSet published on the
test's harclip.control reaches the running app; two cameras whose watch scores sit at different
baselines (CLIP drift) are calibrated each to its own threshold; an episode while calibrating
fires at the watch's absolute threshold (`calibrating`), later ones at the calibrated ones; the
background alone fires nothing; the calibration survives a SIGKILL (the `watches` table)."""

from __future__ import annotations

import ast
import asyncio
import http.server
import json
import random
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from harclip.control import WATCHES_KEY, publish
from harclip.io import events as ev
from harclip.io import store
from harclip.messages import Event, Prediction
from harclip.watches import Watch, WatchSet, WatchSpec
from harclip.watches.calibration import MIN_FRAMES
from tests.support.events import (
    T0,
    app_env,
    app_settings,
    events,
    prediction,
    send,
    start_app,
    stop_app,
)
from tests.support.kafka import read_topic
from tests.support.scoped import Unique

FPS = 5
DT = 1000 // FPS
BASE = {"cam-low": 0.20, "cam-high": 0.45}  # each camera's background score of the watch


class _Hooks(http.server.BaseHTTPRequestHandler):
    """A webhook receiver: keeps (path, event type, stream) of every POST, answers 204."""

    received: ClassVar[list[tuple[str, str, str]]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).received.append((self.path, body["type"], body["stream_id"]))
        self.send_response(204)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def hooks() -> Iterator[str]:
    _Hooks.received = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hooks)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _watchset(version: int, webhooks: list[str]) -> bytes:
    spec = WatchSpec(name="fall", prompts=["a person lying on the floor"], streams=["cam-*"],
                     threshold=0.5, false_alarms_per_hour=1.0, min_duration_seconds=1.0,
                     cooldown_seconds=10.0, severity="critical", webhooks=webhooks)  # fmt: skip
    w = Watch(spec=spec, version=1, positive=[1.0, 0.0], negatives=[[0.0, 1.0]])
    return (
        WatchSet(version=version, embed_dim=2, watches=[w]).model_dump_json(by_alias=True).encode()
    )


def _frames(sid: str, first: int, n: int, episode: tuple[int, int, float] | None = None,
            seed: int = 0) -> list[Prediction]:  # fmt: skip
    """`n` frames from seq `first`: background around the camera's baseline, and `episode`
    (from, to, score) frames scripted high."""
    rng = random.Random(f"{sid}-{seed}")
    out = []
    for seq in range(first, first + n):
        score = min(1.0, max(0.0, rng.gauss(BASE[sid], 0.02)))
        if episode is not None and episode[0] <= seq < episode[1]:
            score = episode[2]
        p = prediction(sid, seq, T0 + seq * DT, {"running": 0.8, "sitting": 0.1, "fighting": 0.05})
        out.append(Prediction.model_validate(p.model_dump() | {"watches": {"fall": score}}))
    return out


def _value(raw: bytes) -> dict:  # type: ignore[type-arg]
    """A `watches` table value as its changelog holds it (Faust's json codec wraps bytes)."""
    v = orjson.loads(raw)
    if isinstance(v, str):
        v = orjson.loads(ast.literal_eval(v) if v.startswith("b'") else v)
    return v  # type: ignore[no-any-return]


def _watch_events(evs: list[Event], sid: str) -> list[Event]:
    return list({e.event_id: e for e in evs if e.stream_id == sid and e.watch}.values())


async def test_calibrated_per_camera_fires_at_each_cameras_threshold_and_survives_a_kill(
    unique: Unique, producer: AIOKafkaProducer, tmp_path: Path, hooks: str
) -> None:
    s = unique.settings
    env = app_env(s, tmp_path / "a", idle_timeout_s=300, webhooks=json.dumps([f"{hooks}/all"]),
                  webhook_allow_loopback="true")  # fmt: skip
    app = await start_app(env)
    try:
        await publish(producer, s.kafka, WATCHES_KEY, b'{"version": 1, "watches": "no"}')
        await publish(producer, s.kafka, WATCHES_KEY, _watchset(1, [f"{hooks}/fall"]))  # live
        await app.wait_metric("harclip_stream_watches", 1)
        assert await app.metric("harclip_stream_watches_refused_total") == 1

        # 1. 40 s of background, a 3 s episode at 0.7 on cam-high while calibrating
        #    (absolute 0.5), then background up to 200 s: enough history (120 s, 300 frames)
        first = [p for sid in BASE for p in _frames(sid, 0, 40 * FPS, (20 * FPS, 23 * FPS, 0.7))]
        rest = [p for sid in BASE for p in _frames(sid, 40 * FPS, 160 * FPS, seed=1)]
        await send(producer, s, first + rest)
        got = await events(s, until=lambda es: all(len(_watch_events(es, c)) >= 2 for c in BASE))
        early = _watch_events(got, "cam-high")
        assert [(e.type, e.calibration, e.threshold) for e in early] == [
            ("watch.start", "calibrating", 0.5), ("watch.end", "calibrating", 0.5)]  # fmt: skip
        assert early[0].start == T0 + 20 * FPS * DT and early[0].severity == "critical"
        # cam-low's episode (0.7 > 0.5) fired too while calibrating
        assert [e.type for e in _watch_events(got, "cam-low")] == ["watch.start", "watch.end"]
        # webhooks: the configured URL gets each watch.start, the watch's own URL both events
        both = ("watch.start", "watch.end")
        want = sorted([("/all", "watch.start", c) for c in BASE]
                      + [("/fall", t, c) for c in BASE for t in both])  # fmt: skip
        await app.wait_metric("harclip_stream_alert_deliveries_total", len(want))
        assert sorted(_Hooks.received) == want

        # the calibration reached the table's changelog: then SIGKILL
        changelog = f"{app_settings(s, tmp_path / 'a').stream.app_id}-watches-changelog"
        last_at = T0 + (200 * FPS - 1) * DT

        def calibrated(records: list) -> bool:  # type: ignore[type-arg]
            newest = {r.key: _value(r.value) for r in records if r.value}
            return len(newest) == 2 and all(
                v["c"]["n"] >= MIN_FRAMES and v["c"]["a"] == last_at for v in newest.values()
            )

        await read_topic(s, changelog, until=calibrated, timeout_s=120)
        await stop_app(app, kill=True)
    except BaseException:
        print("".join(app.log[-80:]))
        await stop_app(app, kill=True)
        raise

    # 2. a new worker with an empty data folder: the calibration comes back from the changelog
    app = await start_app({**env, "HARCLIP_STREAM__DATADIR": str(tmp_path / "b")})
    try:
        # 0.42 on cam-low: above its calibrated threshold, under the absolute 0.5 (a raw
        # threshold would miss it); 0.62 on cam-high: above its own
        third = [
            *_frames("cam-low", 200 * FPS, 30 * FPS, (205 * FPS, 210 * FPS, 0.42), seed=2),
            *_frames("cam-high", 200 * FPS, 30 * FPS, (205 * FPS, 210 * FPS, 0.62), seed=2),
        ]
        await send(producer, s, third)

        def both_ended(es: list[Event]) -> bool:
            return all(len(_watch_events(es, sid)) >= 4 for sid in BASE)

        got = await events(s, until=both_ended, timeout_s=120)
        thresholds = {}
        for sid in BASE:
            mine = _watch_events(got, sid)
            assert [e.type for e in mine] == ["watch.start", "watch.end"] * 2, sid  # no more
            start, end = mine[2:]
            assert (start.calibration, end.calibration) == ("calibrated", "calibrated")
            assert start.start == T0 + 205 * FPS * DT and start.first_seq == 205 * FPS
            assert T0 + 210 * FPS * DT <= end.end <= T0 + 211 * FPS * DT  # type: ignore[operator]
            assert BASE[sid] < start.threshold < (0.42 if sid == "cam-low" else 0.62)  # type: ignore[operator]
            thresholds[sid] = start.threshold
        assert thresholds["cam-high"] - thresholds["cam-low"] > 0.15  # each camera its own

        # the events reached Redis like any other (and so /events and /ws/events)
        r = store.make_redis(s.redis)
        try:
            async with asyncio.timeout(60):
                while True:
                    stored = await ev.read_events(r, s.redis, ["cam-high"])
                    if len({e.event_id for _, e in stored if e.watch == "fall"}) >= 4:
                        break
                    await asyncio.sleep(0.1)  # polling a condition
        finally:
            await r.aclose()
    finally:
        print("".join(app.log[-60:]))
        assert await stop_app(app) == 0
