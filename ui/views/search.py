"""Search & events: text search over the history (CLIP text embedding → kNN over keyframes),
or one stream's history, with stream, label, score and time filters; a hit's "similar" button
finds the keyframes nearest to it (`search_similar`). The Events tab lists the events app's
segments and alerts with filters, the pictures of those with evidence, and plays a clip.
Pictures of hits come from the worker's keyframe thumbnails (else from frames this UI saw)."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import streamlit as st

from harclip.messages import EVENT_TYPES, Event, Prediction
from harclip.wire import SearchHit
from ui import conn, evidence, frames, text

_WINDOWS = {"any time": None, "last 15 min": 15, "last hour": 60, "last 24 h": 1440}
_SIMILAR = "search-similar-of"  # session state: the frame id whose neighbours are shown
_PLAYING = "events-playing"  # session state: the event id whose clip is shown
_EVIDENCE_CARDS = 12  # events with evidence shown as pictures


def _since(choice: str) -> int | None:
    minutes = _WINDOWS[choice]
    return None if minutes is None else text.now_ms() - minutes * 60_000


def _card(p: Prediction, detail: str, key: str, hit: SearchHit | None) -> None:
    with st.container(border=True):
        thumb = evidence.hit_picture(conn.client(), hit) if hit is not None else None
        thumb = thumb or frames.store().get(p.frame_id)
        if thumb:
            st.image(thumb, width="stretch")
        else:
            st.caption("no picture (no thumbnail stored for this frame)")
        st.text(f"{p.label} {p.score:.2f} · {p.stream_id}")
        st.caption(f"{detail} · {text.when(p.captured_at)} UTC · seq {p.seq}")
        if st.button("similar", key=key, icon=":material/image_search:"):
            st.session_state[_SIMILAR] = p.frame_id


def _grid(items: Sequence[tuple[Prediction, str]], prefix: str) -> None:
    cols = st.columns(4)
    for i, (p, detail) in enumerate(items):
        with cols[i % 4]:
            _card(p, detail, f"{prefix}-{i}-{p.frame_id}", None)


def _hit_grid(hits: Sequence[SearchHit], prefix: str) -> None:
    cols = st.columns(4)
    for i, h in enumerate(hits):
        with cols[i % 4]:
            _card(h.prediction, _hit_detail(h), f"{prefix}-{i}-{h.prediction.frame_id}", h)


def _hit_detail(h: SearchHit) -> str:
    more = f" · stands for {h.frames} frames" if h.frames > 1 else ""
    return f"similarity {h.similarity:.3f}{more}"


def _history_tab() -> None:
    c = conn.client()
    with st.form("search"):
        q = st.text_input("text", placeholder="a person riding a bike", key="search-q")
        a, b, d, e = st.columns(4)
        stream = a.text_input("stream", key="search-stream").strip() or None
        label = b.text_input("label", key="search-label").strip() or None
        min_score = d.slider("min score", 0.0, 1.0, 0.0, 0.05, key="search-min") or None
        window = e.selectbox("time", list(_WINDOWS), key="search-window")
        k = st.slider("results", 1, 100, 12, key="search-k")
        go = st.form_submit_button("Search", type="primary")
    if go:
        st.session_state.pop(_SIMILAR, None)
    since = _since(window)
    if q.strip():
        r = conn.call(
            c.search,
            q.strip(),
            k=k,
            stream_id=stream,
            label=label,
            min_score=min_score,
            start_ms=since,
            what="search",
        )
        if r is not None:
            space = text.md(r.space or "this model")
            st.caption(f"{len(r.hits)} hits for “{text.md(r.query)}” in {space}")
            if not r.hits:
                st.info("Nothing matches (history fills as a worker predicts frames).")
            _hit_grid(r.hits, "hit")
    elif stream:
        page = conn.call(
            c.history,
            stream,
            label=label,
            min_score=min_score,
            start_ms=since,
            size=k,
            what="history",
        )
        if page is not None:
            st.caption(f"{len(page.items)} predictions of {text.md(stream)}, newest first")
            _grid([(p, "history") for p in page.items], "hist")
    else:
        st.caption("Type a text, or a stream id to browse its history.")
    of = st.session_state.get(_SIMILAR)
    if isinstance(of, str):
        st.subheader(f"Similar to frame {text.md(of)}")
        r = conn.call(c.search_similar, of, k=k, what="similar")
        if r is not None:
            _hit_grid(r.hits, "similar")


def _events_tab() -> None:
    with st.form("events"):
        a, b, d, e, f = st.columns(5)
        stream = a.text_input("stream", key="ev-stream").strip() or None
        kind = b.selectbox("type", ["any", *EVENT_TYPES], key="ev-type")
        label = d.text_input("label", key="ev-label").strip() or None
        severity = e.selectbox("severity", ["any", "info", "warning", "critical"], key="ev-sev")
        window = f.selectbox("time", list(_WINDOWS), key="ev-window")
        st.form_submit_button("Filter")
    got = conn.optional(
        conn.client().events,
        stream_id=stream,
        type=None if kind == "any" else kind,
        label=label,
        severity=None if severity == "any" else severity,
        start_ms=_since(window),
        size=200,
    )
    if got.missing:
        st.info(conn.EVENTS_MISSING)
        return
    if got.error:
        st.error(f"events: {got.error}")
        return
    page = got.value
    if page is None or not page.items:
        st.info("No events match (the events app writes segments and alerts as streams run).")
        return
    rows = [
        {
            "when (UTC)": text.when(ev.start or ev.emitted_at),
            "type": ev.type,
            "stream": ev.stream_id,
            "label": ev.label or "",
            "rule": ev.rule or "",
            "watch": evidence.watch_note(ev).removeprefix(" · watch "),
            "adapter": evidence.adapter_note(ev),
            "severity": ev.severity or "",
            "frames": ev.frames,
            "seconds": None if ev.start is None or ev.end is None else (ev.end - ev.start) / 1000,
            "score": ev.score_mean,
            "evidence": evidence.evidence_state(ev),
        }
        for ev in page.items
    ]
    st.caption(f"{len(rows)} events, newest first" + (" (more exist)" if page.next else ""))
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
    _evidence_cards([ev for ev in page.items if evidence.has_picture(ev)][:_EVIDENCE_CARDS])


def _evidence_cards(items: list[Event]) -> None:
    """The newest events with evidence: picture, one line of text, a button that plays the clip."""
    evidence.cards(items, title="Evidence", key=_PLAYING)


def render() -> None:
    conn.require_api()
    st.title("Search & events")
    history, events = st.tabs(["History", "Events"])
    with history:
        _history_tab()
    with events:
        _events_tab()


render()
