"""How times, ages and durations read on the pages."""

from __future__ import annotations

import time
from datetime import UTC, datetime


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def when(ms: int | None) -> str:
    """`ms` since epoch as UTC wall time, e.g. `2026-12-02 10:04:05.120`."""
    if ms is None:
        return "-"
    t = datetime.fromtimestamp(ms / 1000, UTC)
    return t.strftime("%Y-%m-%d %H:%M:%S.") + f"{t.microsecond // 1000:03d}"


def duration(ms: float) -> str:
    """A duration in ms for a person: `850 ms`, `12.3 s`, `4 min 05 s`, `2 h 03 min`."""
    if ms < 1000:
        return f"{ms:.0f} ms"
    s = ms / 1000
    if s < 60:
        return f"{s:.1f} s"
    if s < 3600:
        return f"{int(s // 60)} min {int(s % 60):02d} s"
    return f"{int(s // 3600)} h {int(s % 3600 // 60):02d} min"


def ago(ms: int | None, now: int | None = None) -> str:
    """How long before `now` (ms since epoch) `ms` was: `3.2 s ago`."""
    if ms is None:
        return "-"
    return f"{duration(max(0, (now if now is not None else now_ms()) - ms))} ago"


_MARKDOWN = str.maketrans(
    {c: "\\" + c for c in "\\`*_{}[]()<>#+!|~$:&@."} | {"\n": " ", "\r": " ", "\t": " "}
)


def md(value: object) -> str:
    """`value` (data from Kafka, Redis, Elasticsearch or a user) as literal text inside the
    Markdown that `st.markdown`, `st.caption`, `st.error` and the like render: every character
    Markdown or Streamlit gives a meaning (emphasis, links and images, `:red[...]` colours,
    `$` maths, HTML, autolinks) is backslash-escaped and line breaks become spaces."""
    return str(value).translate(_MARKDOWN)
