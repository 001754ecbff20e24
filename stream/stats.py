"""Per-stream statistics in a Faust windowed table: seconds spent in each action and segments
started per label, in tumbling 1-minute windows; the rolling hour is the sum of the 60 minute
windows that end with the newest one (a hopping table of 1 h every minute would hold the same
numbers at 60 changelog records per update). Windows are in capture time (seconds since the
epoch).

A segment's time is added when its `segment.end` arrives, split at minute boundaries; a segment
is counted when its `segment.start` arrives, in the window of its start.

A snapshot reads 60 windows x labels x 2 statistics; each window read is kept here until this
worker adds to that window or its partitions change hands, so a snapshot every second reads only
the windows that changed since the last one (reading all of them each time was a tenth of the
app's time at 2,000 predictions/s).
"""

from __future__ import annotations

import math
from typing import Any

import orjson
from faust.windows import TumblingWindow

from harclip.messages import Event, StreamStats, WindowStats

MINUTE_S = 60.0
HOUR_S = 3600.0
_SEP = "\x1f"


def minute_pieces(start_ms: int, end_ms: int) -> list[tuple[float, float]]:
    """[start, end) cut at minute boundaries: (piece start in seconds, piece length in seconds)."""
    out: list[tuple[float, float]] = []
    t = start_ms / 1000.0
    end = end_ms / 1000.0
    while t < end:
        boundary = (math.floor(t / MINUTE_S) + 1) * MINUTE_S
        stop = min(boundary, end)
        out.append((t, stop - t))
        t = stop
    return out


def stat_key(stream_id: str, label: str, kind: str) -> str:
    """Table key of one statistic: kind "s" (seconds) or "n" (segments)."""
    return f"{stream_id}{_SEP}{label}{_SEP}{kind}"


class Stats:
    """The windowed tables and what the stats agent does with each event."""

    def __init__(self, app: Any, expires_s: int) -> None:
        self._minute_window = TumblingWindow(MINUTE_S)
        self.minutes = app.Table("stats-minute", default=float, help="per minute").tumbling(
            MINUTE_S, expires=expires_s
        )
        self.labels = app.Table("stats-labels", key_type=bytes, value_type=bytes,
                                help="labels each stream has had")  # fmt: skip
        self.newest: dict[str, float] = {}  # stream -> newest capture time seen here, seconds
        self.dirty: set[str] = set()
        # stream -> window start (s) -> the window as read; dropped when it is added to
        self._read: dict[str, dict[float, WindowStats]] = {}

    def forget(self) -> None:
        """Partitions changed hands: what this worker read or knew of its streams may be stale
        (the tables are recovered from the changelog); the next events make them dirty again."""
        self.newest.clear()
        self.dirty.clear()
        self._read.clear()

    def apply(self, e: Event) -> bool:
        """Update the tables for `e` (inside the agent's iteration); True if it counted."""
        if e.label is None or e.start is None:
            return False
        if e.type == "segment.start":
            self._add(e.stream_id, e.label, "n", 1.0, e.start / 1000.0)
            newest = e.start / 1000.0
        elif e.type == "segment.end" and e.end is not None:
            for at_s, seconds in minute_pieces(e.start, e.end):
                self._add(e.stream_id, e.label, "s", seconds, at_s)
            newest = e.end / 1000.0
        else:
            return False
        key = e.stream_id.encode()
        raw = self.labels.get(key)
        known: list[str] = orjson.loads(raw) if raw else []
        if e.label not in known:
            self.labels[key] = orjson.dumps([*known, e.label])
        self.newest[e.stream_id] = max(newest, self.newest.get(e.stream_id, 0.0))
        self.dirty.add(e.stream_id)
        return True

    def _add(self, stream_id: str, label: str, kind: str, value: float, at_s: float) -> None:
        self.minutes.relative_to(float(at_s))[stat_key(stream_id, label, kind)] += value
        read = self._read.get(stream_id)
        if read:
            read.pop(self._minute_window.current(float(at_s))[0], None)

    def snapshot(self, stream_id: str, wall_ms: int) -> StreamStats | None:
        """The stream's minute windows of the last hour (newest first, empty ones left out) and
        the rolling hour that ends with its newest minute."""
        t = self.newest.get(stream_id)
        raw = self.labels.get(stream_id.encode())
        if t is None or not raw:
            return None
        labels: list[str] = orjson.loads(raw)
        minutes: list[WindowStats] = []
        first = self._minute_window.current(t)[0]
        hour_s: dict[str, float] = {}
        hour_n: dict[str, int] = {}
        read = self._read.setdefault(stream_id, {})
        for start in [s for s in read if s <= first - HOUR_S]:
            del read[start]  # out of the hour
        for i in range(int(HOUR_S / MINUTE_S)):
            rng = self._minute_window.current(first - i * MINUTE_S)
            w = read.get(rng[0])
            if w is None:
                w = read[rng[0]] = self._window(self.minutes, stream_id, labels, rng)
            if w.seconds or w.segments:
                minutes.append(w)
                for lb, v in w.seconds.items():
                    hour_s[lb] = round(hour_s.get(lb, 0.0) + v, 3)
                for lb, n in w.segments.items():
                    hour_n[lb] = hour_n.get(lb, 0) + n
        end_ms = int((first + MINUTE_S) * 1000)
        hour = WindowStats(start=end_ms - int(HOUR_S * 1000), end=end_ms, seconds=hour_s,
                           segments=hour_n)  # fmt: skip
        return StreamStats(stream_id=stream_id, minutes=minutes, hour=hour, updated_at=wall_ms)

    @staticmethod
    def _window(
        table: Any, stream_id: str, labels: list[str], rng: tuple[float, float]
    ) -> WindowStats:
        start, end = rng
        seconds: dict[str, float] = {}
        segments: dict[str, int] = {}
        for lb in labels:
            s = table[stat_key(stream_id, lb, "s")][rng]
            n = table[stat_key(stream_id, lb, "n")][rng]
            if s:
                seconds[lb] = round(float(s), 3)
            if n:
                segments[lb] = int(n)
        # faust's window ends are inclusive (start + size - 0.1 s); ours are exclusive ms
        return WindowStats(start=int(start * 1000), end=int(round(end + 0.1, 1) * 1000),
                           seconds=seconds, segments=segments)  # fmt: skip
