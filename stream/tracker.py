"""The per-stream state machine of the events app: smoothing with hysteresis, action segments and
alert rules. Pure (no Kafka, no Faust, no clock): times come in as arguments, so a replayed
backlog gives the same events. docs/events.md states the semantics this module implements.

Every frame belongs to exactly one *run*: the open segment (`open`, its segment.start emitted),
the tentative current action (`tent`, switched in by hysteresis but not yet `min_segment_ms`
long) or the candidate (`cand`, a label leading the current action, not yet for `min_hold_ms`).
A candidate that stops leading folds back into the current action; a tentative action that is
displaced before it is long enough merges into the open segment (or, at the very start of a
stream, into the action that displaces it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import orjson

from harclip.messages import Event, EventType, ModelRef, Prediction, event_id
from harclip.rules import DownRule, LabelRule, Rules

_PRUNE = 1e-3  # smoothed scores below this are dropped from the state


@dataclass(frozen=True, slots=True)
class TrackerConfig:
    """Times in ms of capture time, except `idle_timeout_ms` (wall clock)."""

    smoothing_ms: float = 400.0
    min_hold_ms: int = 600
    min_segment_ms: int = 1000
    idle_timeout_ms: int = 10_000


@dataclass(slots=True)
class Run:
    """Consecutive frames attributed to one label. `scores[label]` = [sum, max, n, peak_at] of
    that label's smoothed score over the frames (kept for the labels this run may be merged
    into); peak_at is the captured_at (ms) of the frame with the max."""

    label: str
    start: int  # captured_at of the first frame, ms
    first_seq: int
    last_seq: int
    last_at: int
    frames: int = 0
    scores: dict[str, list[float]] = field(default_factory=dict)

    @classmethod
    def begin(cls, label: str, at: int, seq: int, tracked: set[str]) -> Run:
        return cls(label, at, seq, seq, at, 0, {lb: [0.0, 0.0, 0.0, at] for lb in tracked})

    def add(self, seq: int, at: int, ema: dict[str, float]) -> None:
        self.frames += 1
        self.last_seq, self.last_at = seq, at
        for lb, acc in self.scores.items():
            v = ema.get(lb, 0.0)
            acc[0] += v
            acc[2] += 1
            if v > acc[1]:
                acc[1], acc[3] = v, at

    def absorb(self, other: Run) -> None:
        """Take `other`'s frames (later or earlier ones); scores of the labels both track."""
        self.frames += other.frames
        if other.last_seq > self.last_seq or other.last_at > self.last_at:
            self.last_seq, self.last_at = other.last_seq, other.last_at
        if other.start < self.start:
            self.start, self.first_seq = other.start, other.first_seq
        for lb, acc in self.scores.items():
            o = other.scores.get(lb)
            if o is not None:
                acc[0] += o[0]
                if o[1] > acc[1]:
                    acc[1], acc[3] = o[1], o[3]
                acc[2] += o[2]

    def own_scores(self) -> tuple[float | None, float | None, int | None]:
        """(mean, max, captured_at of the max) of this run's own label's smoothed score."""
        total, peak, n, peak_at = self.scores.get(self.label, (0.0, 0.0, 0.0, self.start))
        return (total / n, peak, int(peak_at)) if n else (None, None, None)

    def to_list(self) -> list[Any]:
        return [self.label, self.start, self.first_seq, self.last_seq, self.last_at,
                self.frames, self.scores]  # fmt: skip

    @classmethod
    def from_list(cls, v: list[Any]) -> Run:
        scores = {lb: acc if len(acc) > 3 else [*acc, v[1]] for lb, acc in v[6].items()}
        return cls(v[0], v[1], v[2], v[3], v[4], v[5], scores)  # states of before peak_at: start


@dataclass(slots=True)
class StreamState:
    """Everything the app keeps per stream (a Faust table value, JSON)."""

    stream_id: str
    last_seq: int = -1
    last_at: int = -1  # captured_at of the newest accepted prediction, ms
    last_wall: int = 0  # wall clock when it was processed, ms
    down: bool = True  # a new stream starts "down": its first prediction emits stream.up
    ema: dict[str, float] = field(default_factory=dict)
    model: dict[str, Any] | None = None
    open: Run | None = None
    tent: Run | None = None
    cand: Run | None = None
    holds: dict[str, list[float]] = field(default_factory=dict)  # [since,seq,n,sum,max,peak_at]
    fired: dict[str, int] = field(default_factory=dict)  # label rule -> captured_at of last alert
    down_fired: dict[str, int] = field(default_factory=dict)  # down rule -> wall ms of last alert
    down_done: list[str] = field(default_factory=list)  # down rules handled in this silence

    @property
    def current(self) -> Run | None:
        return self.tent or self.open

    def to_bytes(self) -> bytes:
        return orjson.dumps({
            "s": self.stream_id, "q": self.last_seq, "a": self.last_at, "w": self.last_wall,
            "d": self.down, "e": self.ema, "m": self.model,
            "o": self.open.to_list() if self.open else None,
            "t": self.tent.to_list() if self.tent else None,
            "c": self.cand.to_list() if self.cand else None,
            "h": self.holds, "f": self.fired, "df": self.down_fired, "dd": self.down_done,
        })  # fmt: skip

    @classmethod
    def from_bytes(cls, raw: bytes) -> StreamState:
        d = orjson.loads(raw)
        return cls(
            d["s"], d["q"], d["a"], d["w"], d["d"], d["e"], d["m"],
            Run.from_list(d["o"]) if d["o"] else None,
            Run.from_list(d["t"]) if d["t"] else None,
            Run.from_list(d["c"]) if d["c"] else None,
            d["h"], d["f"], d["df"], d["dd"],
        )  # fmt: skip


class Tracker:
    """Applies predictions and idle checks to a stream's state and says which events follow."""

    def __init__(self, config: TrackerConfig, rules: Rules | None = None) -> None:
        self.config = config
        self._label_rules: tuple[LabelRule, ...] = ()
        self._down_rules: tuple[DownRule, ...] = ()
        self._names: frozenset[str] = frozenset()
        self._matching: dict[str, tuple[tuple[LabelRule, ...], tuple[DownRule, ...]]] = {}
        self.set_rules(rules or Rules())

    def set_rules(self, rules: Rules) -> None:
        """Use `rules` from the next call on (per-stream rule state of removed rules is dropped)."""
        self._label_rules, self._down_rules = rules.label_rules, rules.down_rules
        self._names = frozenset(r.name for r in rules.rules)
        self._matching = {}

    def _rules_for(self, stream_id: str) -> tuple[tuple[LabelRule, ...], tuple[DownRule, ...]]:
        hit = self._matching.get(stream_id)
        if hit is None:
            if len(self._matching) > 100_000:
                self._matching.clear()
            hit = (tuple(r for r in self._label_rules if r.matches(stream_id)),
                   tuple(r for r in self._down_rules if r.matches(stream_id)))  # fmt: skip
            self._matching[stream_id] = hit
        return hit

    # ------------------------------------------------------------------ predictions

    def is_stale(self, state: StreamState | None, p: Prediction) -> bool:
        """True for a replay or duplicate: neither its seq nor its captured_at is newer than
        the newest accepted prediction's (a producer that restarts its seq at 0 is not stale:
        its captured_at moved on)."""
        return state is not None and p.seq <= state.last_seq and p.captured_at <= state.last_at

    def on_prediction(
        self, state: StreamState | None, p: Prediction, wall_ms: int
    ) -> tuple[StreamState, list[Event]] | None:
        """The new state and the events that `p` causes, or None if `p` is stale (ignored)."""
        if self.is_stale(state, p):
            return None
        st = state if state is not None else StreamState(p.stream_id)
        events: list[Event] = []
        model = p.model.model_dump()
        if st.down:
            st.down, st.down_done = False, []
            st.model = model
            events.append(self._event(st, "stream.up", p.seq, wall_ms, start=p.captured_at,
                                      first_seq=p.seq, last_seq=p.seq))  # fmt: skip
        elif st.down_done:
            st.down_done = []
        self._smooth(st, p)
        st.last_seq, st.last_at, st.last_wall, st.model = p.seq, p.captured_at, wall_ms, model
        self._segments(st, p.seq, p.captured_at, wall_ms, events)
        self._label_alerts(st, p.seq, p.captured_at, wall_ms, events)
        return st, events

    def _smooth(self, st: StreamState, p: Prediction) -> None:
        ema = st.ema
        if not ema:
            alpha = 1.0
        else:
            dt = max(0, p.captured_at - st.last_at)
            alpha = 1.0 - math.exp(-dt / self.config.smoothing_ms)
        keep = 1.0 - alpha
        for lb in list(ema):
            v = ema[lb] * keep
            if v < _PRUNE:
                del ema[lb]
            else:
                ema[lb] = v
        for ls in p.top_k:
            ema[ls.label] = ema.get(ls.label, 0.0) + alpha * ls.score

    def _segments(
        self, st: StreamState, seq: int, at: int, wall_ms: int, events: list[Event]
    ) -> None:
        ema = st.ema
        cur = st.current
        cur_label = cur.label if cur else None
        leader = max(ema, key=ema.__getitem__) if ema else None
        leads = (
            leader is not None
            and leader != cur_label
            and ema[leader] > (ema.get(cur_label, 0.0) if cur_label else 0.0)
        )
        if not leads or leader is None:
            if st.cand is not None:
                if cur is not None:
                    cur.absorb(st.cand)
                st.cand = None
            if cur is not None:
                cur.add(seq, at, ema)
        else:
            if st.cand is None or st.cand.label != leader:
                if st.cand is not None and cur is not None:
                    cur.absorb(st.cand)
                tracked = {leader} | {r.label for r in (st.tent, st.open) if r is not None}
                st.cand = Run.begin(leader, at, seq, tracked)
            st.cand.add(seq, at, ema)
            if at - st.cand.start >= self.config.min_hold_ms:
                self._switch(st)
        self._maybe_confirm(st, at, wall_ms, events)

    def _switch(self, st: StreamState) -> None:
        """The candidate has led for min_hold_ms: it becomes the (tentative) current action."""
        c = st.cand
        assert c is not None
        st.cand = None
        t = st.tent
        if t is not None:  # displaced before min_segment_ms: merged, never emitted
            if st.open is not None:
                st.open.absorb(t)
            else:
                c.absorb(t)  # stream start: no earlier segment, merge into the next one
            st.tent = None
        if st.open is not None and c.label == st.open.label:
            st.open.absorb(c)  # A, short B, A again: A simply goes on
        else:
            st.tent = c

    def _maybe_confirm(self, st: StreamState, at: int, wall_ms: int, events: list[Event]) -> None:
        """Emit segment.start once the tentative action is sure to span min_segment_ms."""
        t = st.tent
        if t is None:
            return
        sure_end = st.cand.start if st.cand is not None else at
        if sure_end - t.start < self.config.min_segment_ms:
            return
        if st.open is not None:
            events.append(self._segment_event(st, st.open, "segment.end", wall_ms, end=t.start))
        t.scores = {t.label: t.scores[t.label]}
        st.open, st.tent = t, None
        events.append(self._segment_event(st, t, "segment.start", wall_ms, end=None))

    def _label_alerts(
        self, st: StreamState, seq: int, at: int, wall_ms: int, events: list[Event]
    ) -> None:
        label_rules, _ = self._rules_for(st.stream_id)
        for name in [n for n in st.holds if n not in self._names]:
            del st.holds[name]
        ema = st.ema
        for r in label_rules:
            score, label = max((ema.get(lb, 0.0), lb) for lb in r.watched)
            h = st.holds.get(r.name)
            if score < r.min_score:
                if h is not None:
                    del st.holds[r.name]
                continue
            if h is None:
                h = st.holds[r.name] = [at, seq, 0, 0.0, 0.0, at]
            elif len(h) < 6:
                h.append(h[0])  # a hold of before peak_at
            h[2] += 1
            h[3] += score
            if score > h[4]:
                h[4], h[5] = score, at
            if at - h[0] < r.for_seconds * 1000:
                continue
            last = st.fired.get(r.name)
            if last is not None and at - last < r.cooldown_seconds * 1000:
                continue
            st.fired[r.name] = at
            events.append(self._event(
                st, "alert", seq, wall_ms, rule=r.name, severity=r.severity, label=label,
                start=int(h[0]), end=at, first_seq=int(h[1]), last_seq=seq, frames=int(h[2]),
                score_mean=h[3] / h[2], score_max=h[4], peak_at=int(h[5]),
            ))  # fmt: skip

    # ------------------------------------------------------------------ silence

    def on_idle(
        self, st: StreamState, wall_ms: int, *, quiet_since: int | None = None
    ) -> list[Event]:
        """Events for a stream that has sent nothing since `quiet_since` (wall ms, default its
        last prediction's `st.last_wall`): `stream.down` (after closing its segment) once
        idle_timeout_ms have passed, and stream-down alerts."""
        events: list[Event] = []
        idle = wall_ms - (st.last_wall if quiet_since is None else quiet_since)
        if not st.down and idle >= self.config.idle_timeout_ms:
            self._close(st, wall_ms, events)
            events.append(self._event(st, "stream.down", st.last_seq, wall_ms,
                                      start=st.last_at, last_seq=st.last_seq))  # fmt: skip
            st.down, st.ema, st.holds = True, {}, {}
        _, down_rules = self._rules_for(st.stream_id)
        for r in down_rules:
            if idle < r.stream_down_after_seconds * 1000 or r.name in st.down_done:
                continue
            st.down_done.append(r.name)
            last = st.down_fired.get(r.name)
            if last is not None and wall_ms - last < r.cooldown_seconds * 1000:
                continue
            st.down_fired[r.name] = wall_ms
            events.append(self._event(st, "alert", st.last_seq, wall_ms, rule=r.name,
                                      severity=r.severity, start=st.last_at,
                                      last_seq=st.last_seq))  # fmt: skip
        return events

    def idle_thresholds_ms(self, stream_id: str) -> list[int]:
        """Silences (wall ms) after which `on_idle` has something to do for this stream."""
        _, down_rules = self._rules_for(stream_id)
        out = {self.config.idle_timeout_ms}
        out.update(int(r.stream_down_after_seconds * 1000) for r in down_rules)
        return sorted(out)

    def _close(self, st: StreamState, wall_ms: int, events: list[Event]) -> None:
        """End the open segment at its last frame; a candidate folds back, a short tentative
        action merges into the open segment (or is dropped when there is none)."""
        cur = st.current
        if st.cand is not None and cur is not None:
            cur.absorb(st.cand)
        st.cand = None
        if st.tent is not None and st.open is not None:
            st.open.absorb(st.tent)
        st.tent = None
        if st.open is not None:
            events.append(
                self._segment_event(st, st.open, "segment.end", wall_ms, end=st.open.last_at)
            )
            st.open = None

    # ------------------------------------------------------------------ events

    def _segment_event(
        self, st: StreamState, run: Run, type_: EventType, wall_ms: int, *, end: int | None
    ) -> Event:
        mean, peak, peak_at = run.own_scores()
        return self._event(st, type_, run.first_seq, wall_ms, label=run.label, start=run.start,
                           end=end, first_seq=run.first_seq, last_seq=run.last_seq,
                           frames=run.frames, score_mean=mean, score_max=peak,
                           peak_at=peak_at)  # fmt: skip

    @staticmethod
    def _event(
        st: StreamState, type_: EventType, seq: int, wall_ms: int, *, rule: str | None = None,
        **fields: Any,
    ) -> Event:  # fmt: skip
        return Event(
            event_id=event_id(st.stream_id, type_, seq, rule),
            type=type_,
            stream_id=st.stream_id,
            rule=rule,
            model=ModelRef(**st.model) if st.model else None,
            emitted_at=wall_ms,
            **fields,
        )
