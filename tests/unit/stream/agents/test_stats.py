"""The stats agent without Faust or Kafka: events into the windows; the timer's flush writes
the changed streams and keeps them for the next flush when the write failed."""

from __future__ import annotations

from collections.abc import Sequence

from harclip.messages import Event, Evidence, StreamStats, WindowStats
from stream.agents.stats import StatsAgent
from stream.continuity import Record


class Windows:
    def __init__(self) -> None:
        self.dirty: set[str] = set()
        self.applied: list[str] = []

    def apply(self, e: Event) -> bool:
        self.applied.append(e.event_id)
        self.dirty.add(e.stream_id)
        return True

    def snapshot(self, stream_id: str, wall_ms: int) -> StreamStats | None:
        hour = WindowStats(start=0, end=1, seconds={}, segments={})
        return StreamStats(stream_id=stream_id, minutes=[], hour=hour, updated_at=wall_ms)


class Writer:
    def __init__(self) -> None:
        self.ok = True
        self.written: list[list[str]] = []

    async def __call__(self, docs: Sequence[StreamStats]) -> bool:
        self.written.append(sorted(d.stream_id for d in docs))
        return self.ok


def record(event_id: str, stream_id: str) -> Record:
    e = Event(event_id=event_id, type="segment.start", stream_id=stream_id, label="run", start=0)
    return Record("events", 0, 0, stream_id.encode(), e.to_json(), 0.0)


async def test_events_go_to_the_windows_and_the_flush_writes_changed_streams() -> None:
    windows, writer = Windows(), Writer()
    a = StatsAgent(windows, writer)
    await a.apply([record("e1", "cam"), record("e2", "door")])
    assert windows.applied == ["e1", "e2"]
    writer.ok = False
    await a.flush()
    assert writer.written == [["cam", "door"]] and windows.dirty == {"cam", "door"}  # kept
    writer.ok = True
    await a.flush()
    assert windows.dirty == set()
    await a.flush()  # nothing changed: nothing written
    assert len(writer.written) == 2


async def test_the_evidence_steps_copy_of_an_event_is_not_counted_again() -> None:
    windows = Windows()
    a = StatsAgent(windows, Writer())
    e = Event(event_id="e1", type="segment.start", stream_id="cam", label="run", start=0,
              evidence=Evidence(missing="no_frames"))  # fmt: skip
    await a.apply([record("e0", "cam"), Record("events", 0, 1, b"cam", e.to_json(), 0.0)])
    assert windows.applied == ["e0"]
