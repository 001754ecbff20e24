"""The pure parts of the UI's evidence: what an event has, how it reads, its clip's format."""

from __future__ import annotations

from harclip.messages import Event, Evidence, event_id
from ui import evidence


def _event(ev: Evidence | None, type_: str = "segment.end") -> Event:
    return Event(
        event_id=event_id("cam-1", type_, 3), type=type_, stream_id="cam-1",  # type: ignore[arg-type]
        label="fighting", start=1000, end=3500, emitted_at=4000, evidence=ev,
    )  # fmt: skip


def test_an_event_with_snapshot_and_clip() -> None:
    ev = _event(Evidence(snapshot="evidence/a.jpg", thumbnail="evidence/a.thumb.jpg",
                         clip="evidence/a.mp4", frames=50))  # fmt: skip
    assert evidence.has_picture(ev) and evidence.has_clip(ev)
    assert evidence.evidence_state(ev) == "snapshot + clip"
    assert evidence.clip_format(ev) == "video/mp4"
    assert evidence.event_caption(ev) == "fighting on cam-1 · 2.5 s"


def test_webm_clip_and_open_segment() -> None:
    webm = _event(Evidence(clip="evidence/a.webm"))
    assert evidence.clip_format(webm) == "video/webm"
    assert not evidence.has_picture(webm)
    started = _event(Evidence(snapshot="evidence/b.jpg"), "segment.start")
    assert evidence.evidence_state(started) == "snapshot"
    assert evidence.has_picture(started) and not evidence.has_clip(started)


def test_pending_and_missing_read_as_text() -> None:
    assert evidence.evidence_state(_event(None)) == "pending"
    assert evidence.evidence_state(_event(None, "stream.down")) == ""
    expired = _event(Evidence(missing="frames_expired"))
    assert evidence.evidence_state(expired) == "no evidence: its frames had left Kafka"
    assert not evidence.has_picture(expired) and not evidence.has_clip(expired)


def test_a_watch_event_names_its_watch_and_threshold() -> None:
    ev = Event(event_id=event_id("cam-1", "watch.start", 3, "fall"), type="watch.start",
               stream_id="cam-1", watch="fall", threshold=0.4321, calibration="calibrated",
               start=1000, end=None, severity="critical")  # fmt: skip
    assert evidence.event_caption(ev) == "watch.start on cam-1 · watch fall (calibrated 0.432)"
    assert evidence.evidence_state(ev) == "pending"
    assert evidence.watch_note(_event(None)) == ""


def test_segment_evidence_is_one_event_per_segment_newest_first() -> None:
    def seg(type_: str, first_seq: int, start: int, ev: Evidence | None) -> Event:
        return Event(event_id=event_id("cam-1", type_, first_seq), type=type_,  # type: ignore[arg-type]
                     stream_id="cam-1", label="fighting", start=start, first_seq=first_seq,
                     evidence=ev)  # fmt: skip

    snap = Evidence(snapshot="evidence/s.jpg", thumbnail="evidence/s.thumb.jpg")
    full = Evidence(snapshot="evidence/e.jpg", thumbnail="evidence/e.thumb.jpg", clip="e.webm")
    events = [
        seg("segment.start", 1, 1000, snap),
        seg("segment.end", 1, 1000, full),  # ended: its end
        seg("segment.start", 9, 5000, snap),  # open: its start's snapshot
        seg("segment.end", 5, 3000, Evidence(missing="frames_expired")),  # no picture
        seg("segment.start", 7, 4000, None),  # pending
    ]
    got = evidence.segment_evidence(events)
    assert [(e.first_seq, e.type) for e in got] == [(9, "segment.start"), (1, "segment.end")]
    assert evidence.segment_evidence(events, limit=1)[0].first_seq == 9


def test_an_adapter_promotion_reads_as_text() -> None:
    from harclip.messages import AdapterChange

    ev = Event(event_id="p", type="adapter.promoted", stream_id="*", start=1,
               adapter=AdapterChange(reason="rollback", version=None, previous=7))  # fmt: skip
    assert evidence.adapter_note(ev) == "no adapter in force (rollback; was v7)"
    assert evidence.event_caption(ev) == "adapter.promoted: no adapter in force (rollback; was v7)"
    assert evidence.adapter_note(_event(None)) == ""
