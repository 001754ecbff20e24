"""harclip.io.keys: every Redis key name of DESIGN.md, under the settings' prefix."""

from __future__ import annotations

import pytest

from harclip.config import RedisSettings
from harclip.io.keys import evidence_keys, redis_keys, thumb_key


def test_keys_follow_design() -> None:
    k = redis_keys(RedisSettings())
    assert k.streams == "harclip:streams"
    assert k.latest("cam-1") == "harclip:stream:cam-1:latest"
    assert k.recent("cam-1") == "harclip:stream:cam-1:recent"
    assert k.frame("cam-1") == "harclip:stream:cam-1:frame"
    assert k.event_streams == "harclip:event-streams"
    assert k.action("cam-1") == "harclip:stream:cam-1:action"
    assert k.events("cam-1") == "harclip:stream:cam-1:events"
    assert k.stats("cam-1") == "harclip:stream:cam-1:stats"


def test_prefix_comes_from_settings_and_stream_keys_parse_back() -> None:
    k = redis_keys(RedisSettings(key_prefix="t-1"))
    assert k.streams == "t-1:streams"
    assert k.stream_of_recent(k.recent("a:b")) == "a:b"
    assert k.stream_of_events(k.events("a:b")) == "a:b"
    with pytest.raises(ValueError, match="not a recent-stream key"):
        k.stream_of_recent("harclip:stream:a:recent")
    with pytest.raises(ValueError, match="not an events-stream key"):
        k.stream_of_events(k.recent("a"))


# 2026-03-04 23:59:59.500 UTC, and half a second later the next day
_LATE = 1_772_668_799_500
_NEXT_DAY = _LATE + 500


def test_evidence_keys_are_per_stream_and_utc_day() -> None:
    keys = evidence_keys("cam3", _LATE, "ev-1")
    assert keys.snapshot == "evidence/cam3/2026-03-04/ev-1.jpg"
    assert keys.thumbnail == "evidence/cam3/2026-03-04/ev-1.thumb.jpg"
    assert keys.clip == "evidence/cam3/2026-03-04/ev-1.mp4"
    assert keys.clip_for("webm") == "evidence/cam3/2026-03-04/ev-1.webm"
    assert keys.clip_for("mp4") == keys.clip
    assert evidence_keys("cam3", _NEXT_DAY, "ev-1").snapshot == "evidence/cam3/2026-03-05/ev-1.jpg"
    with pytest.raises(ValueError, match="mp4, webm"):
        keys.clip_for("avi")


def test_thumb_key_is_per_stream_and_utc_day() -> None:
    assert thumb_key("cam3", _LATE, "f-9") == "thumbs/cam3/2026-03-04/f-9.jpg"
    assert thumb_key("cam3", _NEXT_DAY, "f-9") == "thumbs/cam3/2026-03-05/f-9.jpg"


@pytest.mark.parametrize("bad", ["..", ".", "../..", "a/../../b", "%2F", "a b", "lobby #2", "a\\b"])
def test_no_id_escapes_its_prefix(bad: str) -> None:
    """Valid stream ids may be '..' or hold '%'; event and frame ids are not checked at all."""
    for key in (
        evidence_keys(bad, _LATE, "ev").snapshot,
        evidence_keys("cam", _LATE, bad).clip,
        thumb_key(bad, _LATE, bad),
    ):
        parts = key.split("/")
        assert len(parts) == 4, key
        assert not {".", ".."} & set(parts), key
        assert all(p and " " not in p and "\\" not in p for p in parts), key
    assert evidence_keys(bad, _LATE, "e").snapshot != evidence_keys("x", _LATE, "e").snapshot


def test_distinct_ids_give_distinct_keys() -> None:
    ids = ["a/b", "a%2Fb", "a_b", "..", "%2E%2E", "a b", "a%20b"]
    keys = {evidence_keys(i, _LATE, "e").snapshot for i in ids}
    assert len(keys) == len(ids)


def test_an_empty_id_is_refused() -> None:
    with pytest.raises(ValueError, match="empty"):
        thumb_key("", _LATE, "f")
