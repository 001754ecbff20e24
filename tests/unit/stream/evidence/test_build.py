"""Which events need evidence and which window of frames; the frames' partition and window."""

from __future__ import annotations

from aiokafka.partitioner import DefaultPartitioner

from harclip.config import StreamSettings
from harclip.messages import Event, Evidence
from stream.evidence.build import need
from stream.evidence.frames import Window, partition_of

S = StreamSettings(pre_roll_s=3, post_roll_s=2, clip_max_s=60)


def ev(type_: str, **kw: object) -> Event:
    return Event.model_validate({"event_id": "e", "type": type_, "stream_id": "cam", **kw})


def test_windows_of_each_event_type() -> None:
    end = need(ev("segment.end", label="run", start=10_000, end=20_000, peak_at=15_000), S)
    assert end is not None and end.clip and end.snapshot_at == 15_000
    assert (end.window.start, end.window.end) == (7_000, 22_000)
    alert = need(ev("alert", rule="r", label="fight", start=10_000, end=12_000), S)
    assert alert is not None and alert.clip and alert.snapshot_at == 12_000
    assert (alert.window.start, alert.window.end) == (7_000, 14_000)
    start = need(ev("segment.start", label="run", start=10_000, peak_at=10_400), S)
    assert start is not None and not start.clip and start.snapshot_at == 10_400
    assert start.window.start <= 10_400 <= start.window.end
    assert need(ev("alert", rule="down", start=10_000), S) is None  # a stream-down alert
    assert need(ev("stream.up", start=10_000), S) is None
    done = ev("segment.end", label="run", start=1, end=2, evidence=Evidence(missing="no_frames"))
    assert need(done, S) is None  # the evidence step's own copy


def test_watch_events_get_evidence_like_segments() -> None:
    start = need(ev("watch.start", watch="fall", start=10_000, peak_at=10_600), S)
    assert start is not None and not start.clip and start.snapshot_at == 10_600
    end = need(ev("watch.end", watch="fall", start=10_000, end=16_000, peak_at=12_000), S)
    assert end is not None and end.clip and end.snapshot_at == 12_000
    assert (end.window.start, end.window.end) == (7_000, 18_000)


def test_a_long_window_keeps_its_first_and_last_halves() -> None:
    w = Window(0, 100_000, max_s=60)
    assert w.keeps(0) and w.keeps(30_000) and w.keeps(70_000) and w.keeps(100_000)
    assert not w.keeps(30_001) and not w.keeps(69_999) and not w.keeps(100_001)
    assert Window(0, 10_000).keeps(5_000)


def test_the_partition_is_the_default_partitioners() -> None:
    parts = list(range(6))
    for sid in ("cam", "cam-2", "door", "x" * 40):
        assert partition_of(sid, 6) == DefaultPartitioner()(sid.encode(), parts, parts)
