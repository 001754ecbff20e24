"""The Watches page's pure parts: the form's text as a WatchSpec body (the API judges it), a
watch as the form's text, and the recent scores of the streams' latest predictions as rows."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from harclip.messages import Prediction
from harclip.watches.spec import WatchSpec


def lines(raw: str) -> list[str]:
    """One item per non-blank line, stripped."""
    return [s.strip() for s in raw.splitlines() if s.strip()]


def watch_body(form: dict[str, Any]) -> dict[str, Any]:
    """The PUT /watches body from the form's values: text areas (one item per line) as lists,
    blanks left out so the API's defaults apply; `pinned` empty or 0 means not pinned."""
    body: dict[str, Any] = {}
    for field in ("prompts", "examples", "negatives", "streams", "webhooks"):
        items = lines(str(form.get(field) or ""))
        if items:
            body[field] = items
    for field in ("window", "false_alarms_per_hour", "threshold", "min_duration_seconds",
                  "cooldown_seconds", "severity"):  # fmt: skip
        if form.get(field) not in (None, ""):
            body[field] = form[field]
    pinned = form.get("pinned_threshold")
    if pinned not in (None, "", 0, 0.0):
        body["pinned_threshold"] = pinned
    return body


def form_of(spec: WatchSpec | None) -> dict[str, Any]:
    """A watch as the form shows it (defaults for a new one)."""
    s = spec or WatchSpec.model_construct(name="", prompts=[], examples=[], negatives=[],
                                          streams=["*"], window=1, false_alarms_per_hour=1.0,
                                          threshold=0.5, pinned_threshold=None,
                                          min_duration_seconds=1.0, cooldown_seconds=60.0,
                                          severity="warning", webhooks=[])  # fmt: skip
    return {
        "name": s.name, "prompts": "\n".join(s.prompts), "examples": "\n".join(s.examples),
        "negatives": "\n".join(s.negatives), "streams": "\n".join(s.streams),
        "webhooks": "\n".join(s.webhooks), "window": s.window,
        "false_alarms_per_hour": s.false_alarms_per_hour, "threshold": s.threshold,
        "pinned_threshold": s.pinned_threshold or 0.0,
        "min_duration_seconds": s.min_duration_seconds, "cooldown_seconds": s.cooldown_seconds,
        "severity": s.severity,
    }  # fmt: skip


def score_rows(latest: Iterable[Prediction]) -> list[dict[str, Any]]:
    """One row per (stream, watch) score of each stream's latest prediction, best first."""
    rows = [
        {"stream": p.stream_id, "watch": name, "score": round(score, 3),
         "captured_at": p.captured_at}
        for p in latest
        for name, score in p.watches.items()
    ]  # fmt: skip
    return sorted(rows, key=lambda r: (-r["score"], r["stream"], r["watch"]))
