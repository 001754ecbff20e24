"""Reading evidence back, the pure parts: which key a request asks for (or why there is none),
the content type by the key, and the HTTP Range header."""

from __future__ import annotations

import pytest

from harclip.io.evidence import NoEvidence, evidence_key, media_type, parse_range
from harclip.messages import Event, Evidence, event_id


def _event(ev: Evidence | None) -> Event:
    return Event(event_id=event_id("cam", "segment.end", 1), type="segment.end", stream_id="cam",
                 start=1000, end=2000, emitted_at=2100, evidence=ev)  # fmt: skip


def test_the_key_or_why_there_is_none() -> None:
    ev = Evidence(snapshot="evidence/cam/1970-01-01/x.jpg", clip="evidence/cam/1970-01-01/x.webm")
    assert evidence_key(_event(ev), "snapshot") == ev.snapshot
    assert evidence_key(_event(ev), "clip") == ev.clip
    assert evidence_key(_event(ev), "thumbnail") == NoEvidence(
        "pending", f"event {_event(ev).event_id!r} has no thumbnail yet (its evidence is being "
        "written)"
    )  # fmt: skip
    pending = evidence_key(_event(None), "clip")
    assert isinstance(pending, NoEvidence) and pending.reason == "pending"
    expired = evidence_key(_event(Evidence(missing="frames_expired")), "snapshot")
    assert isinstance(expired, NoEvidence) and expired.reason == "frames_expired"
    assert "frames expired" in expired.message


def test_media_types() -> None:
    assert media_type("a/b.jpg", "snapshot") == "image/jpeg"
    assert media_type("a/b.thumb.jpg", "thumbnail") == "image/jpeg"
    assert media_type("a/b.mp4", "clip") == "video/mp4"
    assert media_type("a/b.WEBM", "clip") == "video/webm"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("", None),
        ("bytes=0-99", (0, 99)),
        ("bytes=100-", (100, None)),
        ("bytes=-500", (None, 500)),
        (" bytes = 5 - 9 ", (5, 9)),
        ("bytes=9-5", None),  # last before first: ignored, the whole object is served
        ("bytes=0-1,5-9", None),  # several ranges: not supported, ignored
        ("items=0-9", None),
        ("bytes=-", None),
        ("bytes=a-b", None),
    ],
)
def test_parse_range(header: str | None, expected: tuple[int | None, int | None] | None) -> None:
    assert parse_range(header) == expected
