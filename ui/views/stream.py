"""One stream: a larger latest frame with its prediction, the current smoothed action, a Gantt
timeline of action segments (from the events app, else runs of the raw top label) with the
segments' snapshots under it (a click plays a segment's clip), and the score history of the top
labels (from the history in Elasticsearch)."""

from __future__ import annotations

import streamlit as st

from harclip.client import NotFound
from harclip.errors import HarclipError
from harclip.messages import Event, Prediction, StreamAction
from harclip.wire import PredictionPage
from ui import charts, conn, evidence, feedback, frames, text, timeline

_HISTORY = 300  # predictions read for the charts


def _pick() -> str | None:
    listed = conn.call(conn.client().streams, limit=1000, what="streams")
    ids = [x.stream_id for x in listed.streams] if listed else []
    wanted = st.query_params.get("stream")
    if wanted and wanted not in ids:
        ids.insert(0, wanted)
    if not ids:
        st.info("No streams yet: see the Live streams page.")
        return None
    chosen = st.selectbox("stream", ids, index=ids.index(wanted) if wanted in ids else 0)
    if chosen != wanted:
        st.query_params["stream"] = chosen
    return chosen


def _now_panel(sid: str) -> Prediction | None:
    c = conn.client()
    left, right = st.columns([3, 2])
    latest: Prediction | None = None
    try:
        latest = c.latest(sid)
    except NotFound:
        right.info("No prediction for this stream yet.")
    except (HarclipError, ValueError) as e:  # shown to the user, never a traceback
        right.error(f"latest: {conn.describe(e)}")
    try:
        frame = c.frame(sid)
        if latest is not None:
            frames.store().put(latest.frame_id, frame)
            view = frames.store().view(latest.frame_id, frame)
        else:
            view = frames.thumbnail(frame, frames.VIEW_PX)
        if view is not None:
            left.image(view, width="stretch", caption="latest frame")
        else:
            left.caption("the latest frame does not decode")
    except NotFound:
        left.caption("no recent frame (frames expire after a minute without new ones)")
    except (HarclipError, ValueError) as e:  # shown to the user, never a traceback
        left.error(f"frame: {conn.describe(e)}")
    if latest is not None:
        with right:
            st.metric(
                "label",
                latest.label,
                f"score {latest.score:.3f}",
                delta_color="off",
                delta_arrow="off",
            )
            st.altair_chart(charts.topk_bars(latest.top_k), width="stretch")
            lat = latest.latency_ms
            st.caption(
                f"seq {latest.seq} · captured {text.when(latest.captured_at)} UTC · latency "
                f"queue {lat.queue:.0f} / infer {lat.infer:.0f} / total {lat.total:.0f} ms · "
                f"model {text.md(latest.model.name)} {text.md(latest.model.version)} head "
                f"v{latest.model.head_version} engine {text.md(latest.model.engine or '?')}"
            )
            feedback.buttons(f"latest-{sid}", latest.label, frame_id=latest.frame_id)
    return latest


def _action(sid: str, latest: Prediction | None) -> StreamAction | None:
    got = conn.optional(conn.client().stream_action, sid)
    if got.missing:
        st.caption(conn.EVENTS_MISSING)
        return None
    a = got.value
    if got.error:
        st.warning(f"current action: {got.error}")
    elif a is None:
        st.caption(conn.EVENTS_NONE)
    elif a.state == "down":
        st.markdown(f"current action: **down** since {text.when(a.since)} UTC")
    elif a.label is not None and a.since is not None:
        until = latest.captured_at if latest else text.now_ms()
        st.markdown(
            f"current action: **{text.md(a.label)}** for {text.duration(until - a.since)} "
            f"(smoothed score {a.score or 0:.2f})"
        )
    stats = conn.optional(conn.client().stream_stats, sid).value
    if stats is not None and stats.hour.seconds:
        secs = ", ".join(
            f"{text.md(k)} {text.duration(v * 1000)}"
            for k, v in sorted(stats.hour.seconds.items(), key=lambda kv: -kv[1])
        )
        st.caption(f"last hour: {secs}")
    return a


def _timeline(
    sid: str, action: StreamAction | None, history: list[Prediction], latest: Prediction | None
) -> None:
    st.subheader("Action segments")
    got = conn.optional(conn.client().events, stream_id=sid, size=500)
    if got.error:
        st.warning(f"events: {got.error}")
    events: list[Event] = list(got.value.items) if got.value is not None else []
    newest = latest or (history[0] if history else None)  # history is newest first
    until = newest.captured_at if newest is not None else text.now_ms()
    segs = timeline.from_events(events, action, until) if events else []
    if not segs and history:
        segs = timeline.from_predictions(history)
        st.caption("Runs of the raw top label (no segments from the events app for this stream).")
    if not segs:
        st.info("No segments yet.")
        return
    st.altair_chart(charts.gantt(segs), width="stretch")
    evidence.cards(evidence.segment_evidence(events), title="Segment evidence",
                   key="stream-segment-playing")  # fmt: skip


def _scores(history: list[Prediction]) -> None:
    st.subheader("Score history of the top labels")
    rows = timeline.score_rows(history)
    if not rows:
        st.info("No history yet (predictions reach Elasticsearch a second or so after Redis).")
        return
    st.altair_chart(charts.score_lines(rows), width="stretch")


def render() -> None:
    conn.require_api()
    st.title("Stream")
    sid = _pick()
    if sid is None:
        return
    live = st.toggle("refresh live", value=True, key="stream-live")

    @st.fragment(run_every=conn.settings().refresh_s * 2 if live else None)
    def body() -> None:
        latest = _now_panel(sid)
        action = _action(sid, latest)
        page = conn.call(conn.client().history, sid, size=_HISTORY, what="history")
        history = list(page.items) if isinstance(page, PredictionPage) else []
        _timeline(sid, action, history, latest)
        _scores(history)

    body()


render()
