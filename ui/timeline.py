"""A stream's action segments for the Gantt chart: from the events app's segment events (and the
open segment of its current action), or, when the events app is not running, from runs of the
same top label in the raw predictions. Pure."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from harclip.messages import Event, Prediction, StreamAction


@dataclass(frozen=True, slots=True)
class Segment:
    label: str
    start: int  # captured_at where it starts, ms since epoch
    end: int  # where it ends (exclusive), ms since epoch
    score: float | None = None  # mean (smoothed) score
    open: bool = False  # still going on
    source: str = "events"  # "events" (smoothed, by the events app) or "predictions" (raw)


def from_events(events: Sequence[Event], action: StreamAction | None, until: int) -> list[Segment]:
    """Closed segments from `segment.end` events, open ones from `segment.start` events without
    an end (and from `action`); an open segment runs until `until` (ms since epoch)."""
    out: list[Segment] = []
    ended: set[tuple[str | None, int | None]] = set()
    for e in events:
        if e.type == "segment.end" and e.start is not None and e.end is not None and e.label:
            out.append(Segment(e.label, e.start, e.end, e.score_mean))
            ended.add((e.label, e.first_seq))
    starts = [e for e in events if e.type == "segment.start" and e.start is not None and e.label]
    starts.sort(key=lambda e: e.start or 0)
    for i, e in enumerate(starts):
        if (e.label, e.first_seq) in ended or e.start is None or e.label is None:
            continue
        nxt = next((s.start for s in starts[i + 1 :] if s.start is not None), None)
        is_current = action is not None and action.event_id == e.event_id
        end = until if nxt is None or is_current else nxt
        out.append(Segment(e.label, e.start, max(end, e.start + 1), e.score_mean, open=True))
    if (
        action is not None
        and action.state == "active"
        and action.label is not None
        and action.since is not None
        and not any(s.open and s.start == action.since for s in out)
    ):
        out.append(
            Segment(
                action.label, action.since, max(until, action.since + 1), action.score, open=True
            )
        )
    return sorted(out, key=lambda s: s.start)


def from_predictions(preds: Sequence[Prediction]) -> list[Segment]:
    """Runs of the same top label, oldest first; a run ends where the next one starts (its last
    frame's capture time for the newest)."""
    ordered = sorted(preds, key=lambda p: (p.captured_at, p.seq))
    out: list[Segment] = []
    run: list[Prediction] = []
    for p in ordered:
        if run and p.label != run[0].label:
            out.append(_run(run, p.captured_at))
            run = []
        run.append(p)
    if run:
        out.append(_run(run, run[-1].captured_at, is_open=True))
    return out


def _run(run: list[Prediction], end: int, is_open: bool = False) -> Segment:
    start = run[0].captured_at
    score = sum(p.score for p in run) / len(run)
    return Segment(run[0].label, start, max(end, start + 1), score, is_open, "predictions")


def score_rows(preds: Sequence[Prediction], top: int = 3) -> list[dict[str, object]]:
    """(captured_at, label, score) rows of the `top` labels most often first in `preds`, from each
    prediction's top-k (a label missing from a frame's top-k is left out for that frame)."""
    counts: dict[str, int] = {}
    for p in preds:
        counts[p.label] = counts.get(p.label, 0) + 1
    keep = sorted(counts, key=lambda k: -counts[k])[:top]
    rows: list[dict[str, object]] = []
    for p in sorted(preds, key=lambda p: p.captured_at):
        for ls in p.top_k:
            if ls.label in keep:
                rows.append({"captured_at": p.captured_at, "label": ls.label, "score": ls.score})
    return rows
