"""When a watch fires on one stream: `watch.start` once its score has stayed at or above the
threshold in force (`Calibration.threshold`: calibrated, calibrating or pinned) for
`min_duration_seconds` of capture time, and not within `cooldown_seconds` after the previous
firing's end; `watch.end` on the first frame whose score falls below the hysteresis level
(`Calibration.low`), or when the stream goes quiet (`close`). Pure (no clock, no I/O): the events
app (`stream/agents/watches.py`) and the evaluation (`harclip.watches.evaluate`) run the same
code on the same scores and get the same events.

Event ids: `event_id(stream, type, first seq of the episode, watch name)`, so both events of an
episode share the starting seq and a replay gives the same ids.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from harclip.messages import Event, EventType, ModelRef, event_id
from harclip.watches.calibration import Calibration, Source, fingerprint
from harclip.watches.spec import Watch


@dataclass(slots=True)
class Episode:
    """Frames at or above the threshold: a hold until it lasts `min_duration`, then a firing."""

    start: int  # captured_at of its first frame, ms
    first_seq: int
    last_seq: int
    last_at: int
    frames: int = 0
    total: float = 0.0
    peak: float = 0.0
    peak_at: int = 0
    threshold: float = 0.0  # in force when it fired
    source: Source = "calibrating"

    def add(self, seq: int, at: int, score: float) -> None:
        self.frames += 1
        self.total += score
        self.last_seq, self.last_at = seq, at
        if score > self.peak or self.frames == 1:
            self.peak, self.peak_at = score, at

    def to_list(self) -> list[Any]:
        return [self.start, self.first_seq, self.last_seq, self.last_at, self.frames,
                self.total, self.peak, self.peak_at, self.threshold, self.source]  # fmt: skip

    @classmethod
    def from_list(cls, v: list[Any]) -> Episode:
        return cls(*v)


@dataclass(slots=True)
class WatchState:
    """Everything kept per (stream, watch): the calibration, the hold or open firing, the last
    firing's end (cooldown). A Faust table value (`to_bytes`)."""

    cal: Calibration = field(default_factory=Calibration)
    hold: Episode | None = None  # at or above the threshold, not yet fired
    open: Episode | None = None  # fired (watch.start emitted), not ended
    last_end: int | None = None  # captured_at of the previous firing's end, ms
    last_wall: int = 0  # wall clock of the newest frame, ms (idle)

    def to_bytes(self) -> bytes:
        return orjson.dumps({
            "c": self.cal.to_json(), "h": self.hold.to_list() if self.hold else None,
            "o": self.open.to_list() if self.open else None, "e": self.last_end,
            "w": self.last_wall,
        })  # fmt: skip

    @classmethod
    def from_bytes(cls, raw: bytes) -> WatchState:
        d = orjson.loads(raw)
        return cls(
            Calibration.from_json(d["c"]), Episode.from_list(d["h"]) if d["h"] else None,
            Episode.from_list(d["o"]) if d["o"] else None, d["e"], d["w"],
        )  # fmt: skip


def step(
    st: WatchState, watch: Watch, stream_id: str, seq: int, at: int, score: float,
    model: ModelRef | None, wall_ms: int, fp: str | None = None,
) -> list[Event]:  # fmt: skip
    """Apply one frame's score (0 when the prediction left it out: under the floor); the
    events it causes. The threshold is decided on the history before this frame. `fp`: the
    watch's `fingerprint` (computed here when not given; callers that have it pass it)."""
    spec = watch.spec
    fp = fp or fingerprint(watch)
    if st.cal.fingerprint != fp:  # new vectors, window or duration: another distribution
        st.cal, st.hold = Calibration(fingerprint=fp), None
    if at <= st.cal.last_at:
        return []  # not newer than what this watch has seen (a replay, a duplicate)
    threshold, source = st.cal.threshold(spec)
    st.cal.tail = threshold if source == "calibrated" else None  # crossings are counted there
    st.last_wall = wall_ms
    events: list[Event] = []
    if st.open is not None:
        if score < st.cal.low(st.open.threshold):
            events.append(_event(st.open, watch, stream_id, "watch.end", model, wall_ms, end=at))
            st.last_end, st.open, st.hold = at, None, None
        else:
            st.open.add(seq, at, score)
    elif score >= threshold:
        if st.hold is None:
            st.hold = Episode(at, seq, seq, at)
        st.hold.add(seq, at, score)
        cooled = st.last_end is None or at - st.last_end >= spec.cooldown_seconds * 1000
        if at - st.hold.start >= spec.min_duration_seconds * 1000 and cooled:
            st.open, st.hold = st.hold, None
            st.open.threshold, st.open.source = threshold, source
            events.append(_event(st.open, watch, stream_id, "watch.start", model, wall_ms))
    else:
        st.hold = None
    st.cal.add(score, at, spec.min_duration_seconds * 1000)
    return events


def close(
    st: WatchState, watch: Watch, stream_id: str, model: ModelRef | None, wall_ms: int
) -> list[Event]:
    """The stream went quiet: an open firing ends at its last frame; a hold is dropped."""
    st.hold = None
    if st.open is None:
        return []
    e = _event(st.open, watch, stream_id, "watch.end", model, wall_ms, end=st.open.last_at)
    st.last_end, st.open = st.open.last_at, None
    return [e]


def _event(
    ep: Episode, watch: Watch, stream_id: str, type_: EventType, model: ModelRef | None,
    wall_ms: int, *, end: int | None = None,
) -> Event:  # fmt: skip
    name = watch.spec.name
    return Event(
        event_id=event_id(stream_id, type_, ep.first_seq, name),
        type=type_, stream_id=stream_id, watch=name, severity=watch.spec.severity,
        start=ep.start, end=end, first_seq=ep.first_seq, last_seq=ep.last_seq, frames=ep.frames,
        score_mean=ep.total / ep.frames if ep.frames else None, score_max=ep.peak,
        peak_at=ep.peak_at, threshold=ep.threshold, calibration=ep.source, model=model,
        emitted_at=wall_ms,
    )  # fmt: skip
