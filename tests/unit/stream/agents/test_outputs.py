"""The outputs agent without Faust or Kafka: events buffered until the commit writes them."""

from __future__ import annotations

from collections.abc import Sequence

from harclip.messages import Event
from stream.agents.outputs import OutputsAgent
from stream.continuity import Record


class Sink:
    def __init__(self) -> None:
        self.batches: list[list[str]] = []

    async def write(self, events: Sequence[Event]) -> None:
        self.batches.append([e.event_id for e in events])


def record(event_id: str, offset: int = 0) -> Record:
    e = Event(event_id=event_id, type="stream.up", stream_id="cam")
    return Record("events", 0, offset, b"cam", e.to_json(), 0.0)


async def test_events_wait_for_the_commit_and_go_as_one_batch() -> None:
    sink = Sink()
    a = OutputsAgent(sink)
    await a.apply([record("e1"), Record("events", 0, 1, b"cam", b"garbage", 0.0)])
    await a.apply([record("e2", 2)])
    assert sink.batches == [] and a.sent() == []
    await a.write(lambda r: None)
    assert sink.batches == [["e1", "e2"]]  # the malformed record left out
    await a.write(lambda r: None)
    assert sink.batches == [["e1", "e2"], []]


async def test_a_dropped_batch_is_not_written() -> None:
    sink = Sink()
    a = OutputsAgent(sink)
    await a.apply([record("e1")])
    a.drop()
    await a.write(lambda r: None)
    assert sink.batches == [[]]
