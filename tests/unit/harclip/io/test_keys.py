"""harclip.io.keys: every Redis key name of DESIGN.md, under the settings' prefix."""

from __future__ import annotations

import pytest

from harclip.config import RedisSettings
from harclip.io.keys import redis_keys


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
