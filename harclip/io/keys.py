"""Every Redis key of DESIGN.md, under one prefix (`RedisSettings.key_prefix`, default
`harclip`): what the workers write (`streams`, `latest`, `recent`, `frame`) and what the events
app writes (`event-streams`, `action`, `events`, `stats`)."""

from __future__ import annotations

from dataclasses import dataclass

from harclip.config import RedisSettings


@dataclass(frozen=True, slots=True)
class RedisKeys:
    """The Redis key names of DESIGN.md under one prefix."""

    prefix: str = "harclip"

    # ---- predictions (harclip.io.store)

    @property
    def streams(self) -> str:
        """Sorted set: stream id -> last-seen `captured_at` (ms since epoch)."""
        return f"{self.prefix}:streams"

    def latest(self, stream_id: str) -> str:
        return f"{self.prefix}:stream:{stream_id}:latest"

    def recent(self, stream_id: str) -> str:
        return f"{self.prefix}:stream:{stream_id}:recent"

    def frame(self, stream_id: str) -> str:
        return f"{self.prefix}:stream:{stream_id}:frame"

    def stream_of_recent(self, recent_key: str) -> str:
        """The stream id inside a `recent(...)` key."""
        return self._stream_of(recent_key, ":recent", "a recent-stream")

    # ---- the events app (harclip.io.events)

    @property
    def event_streams(self) -> str:
        """Sorted set: stream id -> emitted_at (ms) of its newest event."""
        return f"{self.prefix}:event-streams"

    def action(self, stream_id: str) -> str:
        return f"{self.prefix}:stream:{stream_id}:action"

    def events(self, stream_id: str) -> str:
        return f"{self.prefix}:stream:{stream_id}:events"

    def stats(self, stream_id: str) -> str:
        return f"{self.prefix}:stream:{stream_id}:stats"

    def stream_of_events(self, events_key: str) -> str:
        """The stream id inside an `events(...)` key."""
        return self._stream_of(events_key, ":events", "an events-stream")

    def _stream_of(self, key: str, tail: str, kind: str) -> str:
        head = f"{self.prefix}:stream:"
        if not (key.startswith(head) and key.endswith(tail)):
            raise ValueError(f"not {kind} key: {key!r}")
        return key[len(head) : -len(tail)]


def redis_keys(s: RedisSettings) -> RedisKeys:
    """The keys under `s.key_prefix`."""
    return RedisKeys(s.key_prefix)
