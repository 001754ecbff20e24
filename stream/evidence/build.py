"""One event's evidence: which window of frames it needs, when they all exist, and the objects
written from them (snapshot, thumbnail, clip) -> the `Evidence` the event gets.

Which events: `segment.end` (a clip from start - pre-roll to end + post-roll, the snapshot the
frame nearest `peak_at`), label alerts (the same from the alert's start to its firing time) and
`segment.start` (a snapshot at once, nearest `peak_at` or the start; its clip comes with the
segment's end); `watch.start` and `watch.end` like `segment.start` and `segment.end`. Stream-down
alerts and stream.up/down have none.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from harclip.config import StreamSettings
from harclip.io.keys import evidence_keys
from harclip.messages import Event, Evidence
from stream.evidence.frames import Frames, Window
from stream.evidence.media import build_clip, nearest, thumbnail

SNAPSHOT_SPAN_MS = 1000  # a segment.start's snapshot: frames this near its reference time


class Reader(Protocol):
    async def read(self, stream_id: str, window: Window) -> Frames: ...


class Store(Protocol):
    async def put(self, key: str, data: bytes, content_type: str) -> None: ...


@dataclass(frozen=True, slots=True)
class Built:
    """A build's outcome: the evidence, the frames skipped (they do not decode) and the clip's
    build time (s; None without a clip), for the step's metrics (a worker process has none)."""

    evidence: Evidence
    corrupt: int = 0
    clip_s: float | None = None


@dataclass(frozen=True, slots=True)
class Need:
    """What an event needs: its frames' window, the snapshot's time, and whether a clip."""

    window: Window
    snapshot_at: int
    clip: bool


def need(e: Event, s: StreamSettings) -> Need | None:
    """What evidence `e` needs, or None (none, or it already carries it)."""
    if e.evidence is not None or e.start is None:
        return None
    pre, post = int(s.pre_roll_s * 1000), int(s.post_roll_s * 1000)
    if e.type in ("segment.start", "watch.start"):
        at = e.peak_at if e.peak_at is not None else e.start
        return Need(Window(at - SNAPSHOT_SPAN_MS, at + SNAPSHOT_SPAN_MS), at, clip=False)
    if e.type in ("segment.end", "watch.end") or (e.type == "alert" and e.label is not None):
        end = e.end if e.end is not None else e.start
        at = e.peak_at if e.peak_at is not None else end
        return Need(Window(e.start - pre, end + post, s.clip_max_s), at, clip=True)
    return None


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


async def wait_for_frames(
    s: StreamSettings, n: Need, wall_ms: Callable[[], int] = _wall_ms
) -> None:
    """Until the window's end plus `evidence_wait_s` has passed on the wall clock (capture time
    is the cameras' wall clock), so its last frames are on Kafka."""
    due = n.window.end + int(s.evidence_wait_s * 1000)
    while (left := due - wall_ms()) > 0:
        await asyncio.sleep(left / 1000)


class Builder:
    """Reads an event's frames once they all exist and writes its objects."""

    def __init__(self, s: StreamSettings, reader: Reader, store: Store) -> None:
        self._s = s
        self._reader = reader
        self._store = store

    async def build(self, e: Event, n: Need) -> Built:
        """The event's evidence, its objects written first (`SinkUnavailable` to retry)."""
        found = await self._reader.read(e.stream_id, n.window)
        if found.missing is not None:
            return Built(Evidence(missing=found.missing))
        frames = found.frames
        keys = evidence_keys(e.stream_id, e.start or n.snapshot_at, e.event_id)
        snap = nearest(frames, n.snapshot_at)
        assert snap is not None  # frames is not empty
        thumb = thumbnail(snap.data, self._s.thumbnail_px)
        corrupt = 0
        while thumb is None:  # the nearest frame does not decode: the next nearest that does
            corrupt += 1
            frames = [f for f in frames if f is not snap]
            if (snap := nearest(frames, n.snapshot_at)) is None:
                return Built(Evidence(missing="no_frames"), corrupt)
            thumb = thumbnail(snap.data, self._s.thumbnail_px)
        out = Evidence(frames=1, first_captured_at=snap.captured_at,
                       last_captured_at=snap.captured_at)  # fmt: skip
        clip_s = None
        if n.clip:
            t0 = time.perf_counter()
            clip = await asyncio.to_thread(build_clip, found.frames, self._s.clip_codec,
                                         self._s.clip_preset)  # fmt: skip
            clip_s = time.perf_counter() - t0
            if clip is not None:
                corrupt = clip.skipped
                key = keys.clip_for(clip.container)
                await self._store.put(key, clip.data, clip.content_type)
                out = Evidence(clip=key, frames=clip.frames,
                               first_captured_at=clip.first_captured_at,
                               last_captured_at=clip.last_captured_at)  # fmt: skip
        await self._store.put(keys.snapshot, snap.data, snap.content_type)
        await self._store.put(keys.thumbnail, thumb, "image/jpeg")
        ev = out.model_copy(update={"snapshot": keys.snapshot, "thumbnail": keys.thumbnail})
        return Built(ev, corrupt, clip_s)
