"""harclip.io.store without Redis: key names."""

from __future__ import annotations

import pytest

from harclip.config import RedisSettings
from harclip.io import store


def test_keys_follow_design() -> None:
    k = store.keys(RedisSettings())
    assert k.streams == "harclip:streams"
    assert k.latest("cam-1") == "harclip:stream:cam-1:latest"
    assert k.recent("cam-1") == "harclip:stream:cam-1:recent"
    assert k.frame("cam-1") == "harclip:stream:cam-1:frame"


def test_prefix_comes_from_settings_and_recent_keys_parse_back() -> None:
    k = store.keys(RedisSettings(key_prefix="t-1"))
    assert k.streams == "t-1:streams"
    assert k.stream_of(k.recent("a:b")) == "a:b"
    with pytest.raises(ValueError, match="not a recent-stream key"):
        k.stream_of("harclip:stream:a:recent")
