"""The events app on real Kafka, Redis and Elasticsearch: a scripted sequence with known truth
gives exactly its segments, alerts and stream.down; a replay changes nothing; bad input (rules
file, live rules change, malformed predictions) is refused with a clear message while the app
keeps running."""

from __future__ import annotations

import asyncio
import http.server
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest
from aiokafka import AIOKafkaProducer

from harclip.io import events as ev
from harclip.io import store
from harclip.io.es import make_es
from harclip.rules import parse_rules, publish_rules
from tests.support.events import T0, app_env, events, kinds, script, send, start_app, stop_app
from tests.support.processes import run_python
from tests.support.scoped import Unique

RULES = """
rules:
  - name: fight
    label: fighting
    min_score: 0.6
    for_seconds: 2
    streams: ["cam-*"]
    severity: critical
    cooldown_seconds: 60
  - name: camera-lost
    stream_down_after_seconds: 1
    severity: warning
"""


class _Hooks(http.server.BaseHTTPRequestHandler):
    """Webhook receivers: /ok answers 204, /flaky 503 on its first request then 204, /gone 404.
    `received` keeps (path, JSON body) of every POST."""

    received: ClassVar[list[tuple[str, dict[str, object]]]] = []
    flaky_seen = 0

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).received.append((self.path, body))
        status = 204
        if self.path == "/flaky":
            type(self).flaky_seen += 1
            status = 503 if type(self).flaky_seen == 1 else 204
        elif self.path == "/gone":
            status = 404
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def hooks() -> Iterator[str]:
    _Hooks.received, _Hooks.flaky_seen = [], 0
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hooks)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _down(stream_id: str):  # type: ignore[no-untyped-def]
    return lambda es: any(e.type == "stream.down" and e.stream_id == stream_id for e in es)


async def test_scripted_sequence_gives_two_segments_one_alert_and_stream_down(
    unique: Unique, producer: AIOKafkaProducer, tmp_path: Path, hooks: str
) -> None:
    s = unique.settings
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    webhooks = json.dumps([f"{hooks}/ok", f"{hooks}/flaky", f"{hooks}/gone"])
    env = app_env(s, tmp_path / "a", idle_timeout_s=2, rules=rules, webhooks=webhooks,
                  webhook_allow_loopback="true")  # fmt: skip
    app = await start_app(env)
    try:
        preds = script("cam-1")
        await send(producer, s, preds)
        got = await events(s, until=_down("cam-1"))
        assert kinds(got) == [
            ("stream.up", None),
            ("segment.start", "running"),
            ("segment.end", "running"),
            ("segment.start", "fighting"),
            ("alert", "fighting"),  # rule "fight": held 2 s, fires once (cooldown 60 s)
            ("alert", "camera-lost"),  # after 1 s of silence (wall clock)
            ("segment.end", "fighting"),  # after 2 s of silence: the idle timeout
            ("stream.down", None),
        ]
        segs = {(e.type, e.label): e for e in got if e.type.startswith("segment")}
        assert len(segs) == 4 and len([e for e in got if e.type == "segment.start"]) == 2
        run_end, fight = segs["segment.end", "running"], segs["segment.start", "fighting"]
        assert abs(run_end.end - (T0 + 10_000)) <= 1000  # type: ignore[operator]
        assert run_end.end == fight.start and fight.first_seq == run_end.last_seq + 1  # type: ignore[operator]
        assert run_end.first_seq == 0 and run_end.start == T0
        assert run_end.frames + segs["segment.end", "fighting"].frames == len(preds)
        assert 0.6 < run_end.score_mean < 0.8 and run_end.model is not None  # type: ignore[operator]
        alerts = [e for e in got if e.type == "alert"]
        assert [(a.rule, a.severity) for a in alerts] == [
            ("fight", "critical"), ("camera-lost", "warning")
        ]  # fmt: skip
        fight_alert = alerts[0]
        assert fight_alert.label == "fighting"
        assert fight_alert.end - fight_alert.start >= 2000  # type: ignore[operator]
        assert len({e.event_id for e in got}) == len(got)

        # Webhooks: each alert POSTed (Event JSON) to every URL; a 503 is retried, a 404 is not
        await app.wait_metric("harclip_stream_alert_deliveries_total", 2 * len(alerts))
        await app.wait_metric("harclip_stream_alert_delivery_failures_total", len(alerts),
                              'reason="failed"')  # fmt: skip
        by_path = {p: [b["event_id"] for q, b in _Hooks.received if q == p]
                   for p in ("/ok", "/flaky", "/gone")}  # fmt: skip
        ids = [a.event_id for a in alerts]
        assert by_path["/ok"] == ids and by_path["/gone"] == ids
        assert by_path["/flaky"] == [ids[0], *ids]  # the first alert twice: 503, then 204
        api = "http://127.0.0.1:8000"  # api.public_url's default: the evidence links
        assert all(b["snapshot_url"] == f"{api}/events/{b['event_id']}/snapshot"
                   and b["clip_url"] == f"{api}/events/{b['event_id']}/clip"
                   for _, b in _Hooks.received)  # fmt: skip

        # Redis: the action is "down", every event is in the stream's capped event stream;
        # Elasticsearch: one document per event
        await app.wait_metric("harclip_stream_outputs_written_total", len(got))
        r = store.make_redis(s.redis)
        es = make_es(s.elasticsearch)
        try:
            action = await ev.read_action(r, s.redis, "cam-1")
            assert action is not None and action.state == "down"
            stored = await ev.read_events(r, s.redis, ["cam-1"])
            assert [e.event_id for _, e in stored] == [e.event_id for e in got]
            await es.indices.refresh(index=s.elasticsearch.events_index)
            assert (await es.count(index=s.elasticsearch.events_index))["count"] == len(got)
            stats = await _wait_stats(r, s, "cam-1")
            assert stats.hour.segments == {"running": 1, "fighting": 1}
            covered_s = (preds[-1].captured_at - T0) / 1000
            assert abs(sum(stats.hour.seconds.values()) - covered_s) < 0.01

            # a replay (an upstream worker restart) changes nothing downstream
            await send(producer, s, preds)
            await app.wait_metric("harclip_stream_predictions_ignored_total", len(preds),
                                  'reason="stale"')  # fmt: skip
            assert await events(s) == got
            await es.indices.refresh(index=s.elasticsearch.events_index)
            assert (await es.count(index=s.elasticsearch.events_index))["count"] == len(got)
        finally:
            await r.aclose()
            await es.close()
    finally:
        print("".join(app.log[-80:]))
        assert await stop_app(app) == 0


async def _wait_stats(r, s, stream_id):  # type: ignore[no-untyped-def]
    async with asyncio.timeout(30):
        while True:
            st = await ev.read_stats(r, s.redis, stream_id)
            if st is not None and sum(st.hour.segments.values()) >= 2 and len(st.hour.seconds) >= 2:
                return st
            await asyncio.sleep(0.1)  # polling a condition


async def test_bad_input_is_refused_and_the_app_keeps_running(
    unique: Unique, producer: AIOKafkaProducer, tmp_path: Path
) -> None:
    s = unique.settings
    app = await start_app(app_env(s, tmp_path / "a", idle_timeout_s=30))
    try:
        # a malformed prediction and a record that is not JSON: counted, logged, skipped
        topic = s.kafka.topics.predictions
        await producer.send_and_wait(topic, b"not json", key=b"cam-x")
        await producer.send_and_wait(topic, b'{"schema": "harclip.prediction/1"}', key=b"cam-x")
        await app.wait_metric("harclip_stream_predictions_ignored_total", 2, 'reason="malformed"')
        assert app.logged("ignoring a malformed prediction")

        # a bad live rules change is refused naming the rule and field; the rules stay
        good = parse_rules("rules: [{name: run, label: running, min_score: 0.5}]")
        await publish_rules(s.kafka, good, updated_at=int(time.time() * 1000))
        await app.wait_metric("harclip_stream_rules", 1)
        bad = (
            b'{"schema": "harclip.rules/1", "rules": [{"name": "x", "label": "a", "min_score": 7}]}'
        )
        await producer.send_and_wait(s.kafka.topics.control, bad, key=b"rules")
        await app.wait_metric("harclip_stream_rules_refused_total", 1)
        assert app.logged("rule 1 ('x'): field 'min_score'")
        assert await app.metric("harclip_stream_rules") == 1

        # and it still works: the live rule fires
        await send(producer, s, script("cam-y", seconds=2))
        got = await events(s, until=lambda es: any(e.type == "alert" for e in es))
        assert [e.rule for e in got if e.type == "alert"] == ["run"]
    finally:
        print("".join(app.log[-60:]))
        assert await stop_app(app) == 0


async def test_a_bad_rules_file_stops_start_up_naming_rule_and_field(
    unique: Unique, tmp_path: Path
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules:\n  - name: fight\n    label: fighting\n    severity: loud\n")
    env = app_env(unique.settings, tmp_path / "a", rules=rules)
    done = await asyncio.to_thread(run_python, "stream", env=env, timeout_s=60)
    err = done.stderr
    assert done.returncode == 2
    assert "rule 1 ('fight'): field 'severity'" in err
    assert "Traceback" not in err
