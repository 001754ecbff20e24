"""The track agent without Faust or Kafka: records in, events sent, states written at the
checkpoint's commit (a dict is the `states` table)."""

from __future__ import annotations

import asyncio
from typing import Any

from harclip.messages import Event
from stream.agents.track import TrackAgent
from stream.continuity import Record
from stream.metrics import StreamMetrics
from stream.tracker import StreamState, Tracker, TrackerConfig
from tests.unit.stream.test_tracker import pred


class Clock:
    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


class Sent:
    def __init__(self) -> None:
        self.events: list[Event] = []

    async def __call__(self, e: Event) -> Any:
        self.events.append(e)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


def record(seq: int, label: str, *, offset: int | None = None, partition: int = 1) -> Record:
    p = pred(seq, label)
    at = p.captured_at / 1000
    return Record("preds", partition, seq if offset is None else offset, b"cam", p.to_json(), at)


def agent(clock: Clock | None = None) -> tuple[TrackAgent, dict[bytes, bytes], Sent]:
    states: dict[bytes, bytes] = {}
    sent = Sent()
    a = TrackAgent(Tracker(TrackerConfig(idle_timeout_ms=10_000)), states, sent,
                   StreamMetrics(), "ticks", clock or Clock(1_000))  # fmt: skip
    return a, states, sent


async def test_predictions_send_events_and_leave_one_state_per_stream_to_write() -> None:
    a, states, sent = agent()
    await a.apply([record(i, "running") for i in range(10)])
    assert [e.type for e in sent.events] == ["stream.up", "segment.start"]
    assert len(a.sent()) == 2 and a.sent() == []  # handed to the checkpoint once
    assert list(a.dirty) == ["cam"] and states == {}  # written at the commit, not before
    focused: list[int] = []
    await a.write(lambda r: focused.append(r.offset))
    assert focused == [9]  # the table write takes the partition of the stream's newest record
    assert StreamState.from_bytes(states[b"cam"]).last_seq == 9
    assert a.processed == {1: 9} and a.dirty == {}


async def test_a_malformed_or_stale_prediction_is_counted_and_changes_nothing() -> None:
    a, _states, _sent = agent()
    await a.apply([record(5, "running")])
    bad = Record("preds", 1, 6, b"cam", b"not json", 0.0)
    wrong_key = Record("preds", 1, 7, b"other", record(8, "running").value, 0.0)
    await a.apply([bad, wrong_key, record(3, "running", offset=8)])  # seq 3 < 5: stale
    m = a.metrics
    assert m.ignored.labels("malformed")._value.get() == 2
    assert m.ignored.labels("stale")._value.get() == 1
    assert a.processed == {1: 8}  # the partition's records were handled, ignored or not


async def test_a_tick_after_the_idle_timeout_takes_the_stream_down() -> None:
    clock = Clock(1_000)
    a, _states, sent = agent(clock)
    await a.apply([record(0, "running")])
    await a.write(lambda r: None)
    a.drop()  # as after a revocation: the state comes from the table again
    clock.now += 10_000
    await a.apply([Record("ticks", 1, 0, b"cam", b'{"tick": "idle"}', 0.0)])
    assert sent.events[-1].type == "stream.down"
    await a.apply([Record("ticks", 1, 1, b"unknown", b"{}", 0.0)])  # no state: nothing
    assert sent.events[-1].type == "stream.down"


async def test_drop_forgets_what_is_not_written() -> None:
    a, states, _ = agent()
    await a.apply([record(0, "running")])
    a.drop()
    assert a.dirty == {} and a.sent() == [] and a.cache == {}
    await a.write(lambda r: None)
    assert states == {}
