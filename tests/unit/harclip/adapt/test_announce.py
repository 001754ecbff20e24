"""The `adapter.promoted` event of a promotion: built from the control record, its id stable
(a replay is one event), sent after the control record, and a failed send counted, not raised."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from harclip.adapt.announce import failures_key, promotion_event, send_event
from harclip.adapt.cache import Adapter
from harclip.adapt.holder import Published
from harclip.config import Settings
from harclip.messages import DEPLOYMENT_STREAM, Event, ModelRef, action_of, promotion_event_id
from stream.agents.alerts import AlertsAgent
from stream.continuity import Record
from stream.evidence.build import need

REF = ModelRef(name="m", version="1", head_version=3)


def adapter(version: int) -> Adapter:
    keys = np.eye(4, dtype=np.float32)[:2]
    return Adapter(version=version, scopes=("cam-*",), labels=("a", "b"), keys=keys,
                   values=np.array([0, 1], np.int32), scope_of=np.array([0, 0], np.int32),
                   alpha=1.0, beta=5.0, model="m/1", cv_score=0.8)  # fmt: skip


def test_a_gate_promotion_is_one_event_with_both_versions() -> None:
    e = promotion_event(Published(adapter(20), 1_700_000_000_123), adapter(10), "gate",
                        score=0.8, champion_score=0.5, model=REF)  # fmt: skip
    assert e.type == "adapter.promoted" and e.stream_id == DEPLOYMENT_STREAM == "*"
    assert e.start == e.emitted_at == 1_700_000_000_123
    assert e.adapter is not None and e.adapter.reason == "gate"
    assert (e.adapter.version, e.adapter.previous, e.adapter.scopes) == (20, 10, ("cam-*",))
    assert (e.adapter.score, e.adapter.champion_score) == (0.8, 0.5)
    assert e.model is not None and e.model.adapter == 20 and e.model.head_version == 3
    assert e.label is None and e.evidence is None
    assert Event.from_json(e.to_json()) == e  # the one codec reads it back


def test_a_rollback_to_no_adapter_has_version_none() -> None:
    e = promotion_event(Published(None, 5), adapter(10), "rollback",
                        score=None, champion_score=None, model=REF)  # fmt: skip
    assert e.adapter is not None and e.adapter.version is None and e.adapter.previous == 10
    assert e.adapter.scopes == () and e.model is not None and e.model.adapter is None
    doc = e.to_dict()
    assert doc["adapter"]["reason"] == "rollback" and "watch" not in doc


def test_the_id_is_stable_and_tells_promotions_apart() -> None:
    one = promotion_event(Published(adapter(20), 99), None, "manual",
                          score=None, champion_score=None, model=None)  # fmt: skip
    again = promotion_event(Published(adapter(20), 99), adapter(3), "manual",
                            score=0.1, champion_score=None, model=REF)  # fmt: skip
    assert one.event_id == again.event_id == promotion_event_id(20, 99)
    assert len(one.event_id) == 32
    assert promotion_event_id(20, 100) != one.event_id  # a later promotion of the same version
    assert promotion_event_id(None, 99) != one.event_id
    assert promotion_event_id(None, 99) == promotion_event_id(None, 99)


def test_other_events_keep_their_bytes() -> None:
    """`adapter` is OMIT_EMPTY: events without it serialize as before."""
    e = Event(event_id="x", type="segment.start", stream_id="cam-1", label="a", start=1)
    assert b'"adapter"' not in e.to_json()


class _Producer:
    def __init__(self, fail: bool) -> None:
        self.fail = fail
        self.sent: list[tuple[str, bytes, bytes]] = []

    async def send_and_wait(self, topic: str, value: bytes, key: bytes) -> None:
        if self.fail:
            raise RuntimeError("broker gone")
        self.sent.append((topic, value, key))


class _Redis:
    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    async def incr(self, key: str) -> int:
        self.counts[key] = self.counts.get(key, 0) + 1
        return self.counts[key]


async def test_sent_on_the_events_topic_keyed_by_its_stream() -> None:
    s = Settings()
    e = promotion_event(Published(adapter(20), 99), None, "gate",
                        score=0.8, champion_score=0.0, model=REF)  # fmt: skip
    p, r = _Producer(fail=False), _Redis()
    assert await send_event(s, p, r, e)
    assert p.sent == [(s.kafka.topics.events, e.to_json(), b"*")] and r.counts == {}


async def test_a_failed_send_is_logged_and_counted_not_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    s = Settings()
    e = promotion_event(Published(adapter(20), 99), None, "gate",
                        score=0.8, champion_score=0.0, model=REF)  # fmt: skip
    r = _Redis()
    assert not await send_event(s, _Producer(fail=True), r, e)
    assert r.counts == {failures_key(s): 1}
    assert "not sent" in caplog.text and e.event_id in caplog.text


async def test_webhooks_evidence_and_actions_leave_it_alone() -> None:
    offered: list[Any] = []

    class Hooks:
        def offer(self, alert: Event) -> None:
            offered.append(alert)

        def evidence(self, alert: Event) -> None:
            offered.append(alert)

    e = promotion_event(Published(adapter(20), 99), None, "gate",
                        score=0.8, champion_score=0.0, model=REF)  # fmt: skip
    rec = Record("harclip.events", 0, 0, b"*", e.to_json(), 0.0)
    await AlertsAgent(Hooks()).apply([rec])
    assert offered == []  # no webhook delivery
    assert need(e, Settings().stream) is None  # no evidence to build
    assert action_of(e) is None  # no stream's current action
