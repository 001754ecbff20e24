"""The pages' charts (Altair specs, drawn by `st.altair_chart`). Pure: data in, chart out."""

from __future__ import annotations

from collections.abc import Sequence

import altair as alt
import pandas as pd

from harclip.messages import LabelScore
from ui.timeline import Segment

_TIME_AXIS = alt.Axis(format="%H:%M:%S", labelOverlap=True)


def topk_bars(top_k: Sequence[LabelScore], height: int = 160) -> alt.Chart:
    """Horizontal bars of label scores, best first."""
    df = pd.DataFrame([{"label": x.label, "score": x.score} for x in top_k])
    chart: alt.Chart = (
        alt.Chart(df, height=height)
        .mark_bar()
        .encode(
            x=alt.X("score:Q", scale=alt.Scale(domain=[0, 1]), title="score"),
            y=alt.Y("label:N", sort="-x", title=None),
            tooltip=["label", alt.Tooltip("score:Q", format=".3f")],
        )
    )
    return chart


def gantt(segments: Sequence[Segment], height: int = 220) -> alt.Chart:
    """Action segments on a time axis, one row per label; open segments lighter."""
    df = pd.DataFrame(
        [
            {
                "label": s.label,
                "start": pd.to_datetime(s.start, unit="ms", utc=True),
                "end": pd.to_datetime(s.end, unit="ms", utc=True),
                "seconds": round((s.end - s.start) / 1000, 1),
                "score": None if s.score is None else round(s.score, 3),
                "state": "open" if s.open else "closed",
            }
            for s in segments
        ]
    )
    chart: alt.Chart = (
        alt.Chart(df, height=height)
        .mark_bar(cornerRadius=2)
        .encode(
            x=alt.X("start:T", title="capture time (UTC)", axis=_TIME_AXIS),
            x2="end:T",
            y=alt.Y("label:N", title=None),
            color=alt.Color("label:N", legend=None),
            opacity=alt.Opacity(
                "state:N",
                scale=alt.Scale(domain=["closed", "open"], range=[1.0, 0.55]),
                legend=None,
            ),
            tooltip=["label", "seconds", "score", "state"],
        )
    )
    return chart


def score_lines(rows: Sequence[dict[str, object]], height: int = 240) -> alt.Chart:
    """Score over capture time, one line per label."""
    df = pd.DataFrame(list(rows))
    df["time"] = pd.to_datetime(df["captured_at"], unit="ms", utc=True)
    chart: alt.Chart = (
        alt.Chart(df, height=height)
        .mark_line(point=True)
        .encode(
            x=alt.X("time:T", title="capture time (UTC)", axis=_TIME_AXIS),
            y=alt.Y("score:Q", scale=alt.Scale(domain=[0, 1])),
            color="label:N",
            tooltip=["label", alt.Tooltip("score:Q", format=".3f"), "time:T"],
        )
    )
    return chart


def buckets(rows: Sequence[tuple[str, float]], height: int = 160) -> alt.Chart:
    """Observations per histogram bucket, in bucket order."""
    df = pd.DataFrame([{"bucket": b, "n": n, "order": i} for i, (b, n) in enumerate(rows)])
    chart: alt.Chart = (
        alt.Chart(df, height=height)
        .mark_bar()
        .encode(
            x=alt.X("bucket:N", sort=alt.SortField("order"), title="seconds"),
            y=alt.Y("n:Q", title="observations"),
            tooltip=["bucket", "n"],
        )
    )
    return chart


def confusion(matrix: Sequence[Sequence[int]], classes: Sequence[str]) -> alt.LayerChart:
    """Confusion matrix heat map: rows true class, columns predicted."""
    df = pd.DataFrame(
        [
            {"true": classes[i], "predicted": classes[j], "n": int(n)}
            for i, row in enumerate(matrix)
            for j, n in enumerate(row)
        ]
    )
    base = alt.Chart(df, height=max(200, 22 * len(classes))).encode(
        x=alt.X("predicted:N", sort=list(classes)),
        y=alt.Y("true:N", sort=list(classes)),
    )
    cells = base.mark_rect().encode(
        color=alt.Color("n:Q", scale=alt.Scale(scheme="blues")), tooltip=["true", "predicted", "n"]
    )
    text = base.mark_text(fontSize=10).encode(text="n:Q")
    layered: alt.LayerChart = cells + text
    return layered


def per_class(values: dict[str, float], title: str) -> alt.Chart:
    df = pd.DataFrame([{"class": k, "value": v} for k, v in values.items()])
    chart: alt.Chart = (
        alt.Chart(df, height=max(160, 18 * len(values)), title=title)
        .mark_bar()
        .encode(
            x=alt.X("value:Q", scale=alt.Scale(domain=[0, 1]), title=None),
            y=alt.Y("class:N", sort="-x", title=None),
            tooltip=["class", alt.Tooltip("value:Q", format=".3f")],
        )
    )
    return chart
