"""Every Redis key of DESIGN.md, under one prefix (`RedisSettings.key_prefix`, default
`harclip`): what the workers write (`streams`, `latest`, `recent`, `frame`) and what the events
app writes (`event-streams`, `action`, `events`, `stats`); and the object store's keys
(`evidence_keys`, `thumb_key`, `feedback_key`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote

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


# ---- the object store (harclip.io.objects)

CLIP_CONTAINERS = ("mp4", "webm")


@dataclass(frozen=True, slots=True)
class EvidenceKeys:
    """Where one event's evidence lives: `evidence/<stream>/<yyyy-mm-dd>/<event_id>.<ext>`."""

    snapshot: str  # the frame as captured, JPEG
    thumbnail: str  # a small JPEG of the snapshot
    clip: str  # the video, MP4 (`clip_for("webm")` for a WebM one)

    def clip_for(self, ext: str) -> str:
        """The clip's key in container `ext` ("mp4" or "webm")."""
        if ext not in CLIP_CONTAINERS:
            raise ValueError(f"clip container must be one of {', '.join(CLIP_CONTAINERS)}: {ext!r}")
        return f"{self.clip.removesuffix('.mp4')}.{ext}"


def evidence_keys(stream_id: str, captured_at_ms: int, event_id: str) -> EvidenceKeys:
    """The keys of an event's evidence; the day is that of `captured_at_ms` (ms since epoch) in
    UTC. Each part is percent-encoded, so no stream or event id leaves its prefix."""
    stem = f"evidence/{_part(stream_id)}/{_day(captured_at_ms)}/{_part(event_id)}"
    return EvidenceKeys(snapshot=f"{stem}.jpg", thumbnail=f"{stem}.thumb.jpg", clip=f"{stem}.mp4")


def thumb_key(stream_id: str, captured_at_ms: int, frame_id: str) -> str:
    """The key of a keyframe's thumbnail: `thumbs/<stream>/<yyyy-mm-dd>/<frame_id>.jpg`."""
    return f"thumbs/{_part(stream_id)}/{_day(captured_at_ms)}/{_part(frame_id)}.jpg"


def _day(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d")


def _part(value: str) -> str:
    """`value` as one path segment: '/', '%', spaces and anything but unreserved characters
    percent-encoded (so distinct ids stay distinct), and the dot segments '.' and '..' too."""
    if not value:
        raise ValueError("an object key part must not be empty")
    part = quote(value, safe="-_.~:@+,=")
    return part.replace(".", "%2E") if part in (".", "..") else part


def feedback_key(stream_id: str, given_at_ms: int, feedback_id: str) -> str:
    """The key of a judged frame's JPEG: `feedback/<stream>/<yyyy-mm-dd>/<feedback_id>.jpg`
    (the day of `given_at_ms`, UTC)."""
    return f"feedback/{_part(stream_id)}/{_day(given_at_ms)}/{_part(feedback_id)}.jpg"
