"""The alerts agent without Faust or Kafka: alerts, and only alerts, go to the webhooks."""

from __future__ import annotations

from harclip.messages import Event, Evidence
from stream.agents.alerts import AlertsAgent
from stream.continuity import Record


class Webhooks:
    def __init__(self) -> None:
        self.offered: list[str] = []
        self.copies: list[str] = []

    def offer(self, alert: Event) -> None:
        self.offered.append(alert.event_id)

    def evidence(self, alert: Event) -> None:
        self.copies.append(alert.event_id)


def record(event_id: str, kind: str) -> Record:
    e = Event(event_id=event_id, type=kind, stream_id="cam", rule="r" if kind == "alert" else None)
    return Record("events", 0, 0, b"cam", e.to_json(), 0.0)


async def test_only_alerts_are_offered() -> None:
    hooks = Webhooks()
    a = AlertsAgent(hooks)
    await a.apply([record("a1", "alert"), record("u1", "stream.up"), record("a2", "alert")])
    assert hooks.offered == ["a1", "a2"]
    assert a.sent() == []


async def test_the_evidence_steps_copy_of_an_alert_is_not_delivered_again() -> None:
    hooks = Webhooks()
    e = Event(event_id="a1", type="alert", stream_id="cam", rule="r",
              evidence=Evidence(missing="no_frames"))  # fmt: skip
    await AlertsAgent(hooks).apply([record("a0", "alert"), Record("events", 0, 1, b"cam",
                                                                  e.to_json(), 0.0)])  # fmt: skip
    assert hooks.offered == ["a0"]
    assert hooks.copies == ["a1"]  # handed over for the inline thumbnail


async def test_watch_events_are_offered_too() -> None:
    hooks = Webhooks()
    kinds = ["watch.start", "segment.start", "watch.end", "stream.down"]
    await AlertsAgent(hooks).apply([record(f"e{i}", k) for i, k in enumerate(kinds)])
    assert hooks.offered == ["e0", "e2"]
