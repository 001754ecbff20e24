"""The harclip.event/1 contract: ids, JSON round trip, the action an event sets."""

from __future__ import annotations

import pytest

from harclip.errors import MessageError
from harclip.messages import Event, action_of, event_id


def test_event_ids_are_deterministic_and_distinct() -> None:
    a = event_id("cam-1", "segment.start", 12)
    assert a == event_id("cam-1", "segment.start", 12) and len(a) == 32
    others = {
        event_id("cam-1", "segment.end", 12), event_id("cam-2", "segment.start", 12),
        event_id("cam-1", "segment.start", 13), event_id("cam-1", "alert", 12, "fight"),
    }  # fmt: skip
    assert a not in others and len(others) == 4


def test_event_json_round_trip_and_bad_input() -> None:
    e = Event(event_id=event_id("c", "segment.start", 1), type="segment.start", stream_id="c",
              label="running", start=10, first_seq=1, last_seq=6, frames=6, score_mean=0.7,
              score_max=0.8, emitted_at=99)  # fmt: skip
    assert Event.from_json(e.to_json()) == e
    assert e.to_dict()["schema"] == "harclip.event/1"
    with pytest.raises(MessageError, match="type"):
        Event.from_json(e.to_json().replace(b"segment.start", b"segment.middle"))
    with pytest.raises(MessageError, match="schema"):
        Event.from_json(e.to_json().replace(b"harclip.event/1", b"harclip.event/9"))


def test_actions_follow_segment_start_and_stream_down() -> None:
    def ev(type_: str, **kw: object) -> Event:
        return Event.model_validate({"event_id": "x", "type": type_, "stream_id": "c",
                                     "emitted_at": 5, **kw})  # fmt: skip

    a = action_of(ev("segment.start", label="running", start=100, last_seq=7))
    assert a is not None
    assert (a.state, a.label, a.since, a.updated_at) == ("active", "running", 100, 5)
    d = action_of(ev("stream.down", start=200, last_seq=9))
    assert d is not None and d.state == "down" and d.label is None
    assert action_of(ev("segment.end", label="running")) is None
    assert action_of(ev("alert", rule="fight")) is None
