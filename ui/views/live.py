"""Live streams: a tile per stream (latest frame, label and score, current smoothed action and
how long it has lasted, age), refreshed by an `st.fragment` every `HARCLIP_UI__REFRESH_S`
without rerunning the page; a tile's link opens the stream."""

from __future__ import annotations

import time
from dataclasses import dataclass

import httpx
import streamlit as st

from harclip.client import ApiError, NotFound
from harclip.errors import HarclipError
from harclip.messages import Prediction, StreamAction
from ui import conn, frames, prom, text

_COLUMNS = 3


@dataclass(frozen=True, slots=True)
class Tile:
    stream_id: str
    last_seen: int
    latest: Prediction | None
    frame: bytes | None
    action: StreamAction | None
    events_missing: bool


def action_text(a: StreamAction | None, latest: Prediction | None, now: int) -> str:
    """The current smoothed action and how long it has lasted (capture time when known)."""
    if a is None:
        return "–"
    if a.state == "down":
        return "down"
    if a.label is None or a.since is None:
        return "starting"
    until = latest.captured_at if latest is not None else now
    return f"{text.md(a.label)} for {text.duration(max(0, until - a.since))}"


def _tile(stream_id: str, last_seen: int) -> Tile:
    c = conn.client()
    latest: Prediction | None = None
    frame: bytes | None = None
    try:
        latest = c.latest(stream_id)
        raw = c.frame(stream_id)
        # Latest and frame are written together; keep the pictures by frame_id only if no newer
        # one arrived between the two reads, so search hits show the right picture.
        if c.latest(stream_id).frame_id == latest.frame_id:
            frames.store().put(latest.frame_id, raw)
            frame = frames.store().view(latest.frame_id, raw)
        else:
            frame = frames.thumbnail(raw, frames.VIEW_PX)
    except NotFound:
        pass  # no prediction yet, or the frame's TTL passed
    action = conn.optional(c.stream_action, stream_id)
    return Tile(stream_id, last_seen, latest, frame, action.value, action.missing)


def _show(t: Tile, now: int) -> None:
    with st.container(border=True):
        st.markdown(f"**{text.md(t.stream_id)}**")
        if t.frame:
            st.image(t.frame, width="stretch")
        else:
            st.caption("no recent frame")
        p = t.latest
        if p is None:
            st.caption("no prediction yet")
        else:
            st.markdown(f"### {text.md(p.label)} `{p.score:.2f}`")
            st.caption(
                f"seq {p.seq} · captured {text.ago(p.captured_at, now)} · "
                f"{p.latency_ms.total:.0f} ms end to end · head v{text.md(p.model.head_version)}"
            )
        if not t.events_missing:
            st.markdown(f"action: **{action_text(t.action, p, now)}**")
        st.caption(f"last seen {text.ago(t.last_seen, now)}")
        st.page_link(
            "views/stream.py",
            label="open",
            icon=":material/open_in_new:",
            query_params={"stream": t.stream_id},
        )


def _drops() -> str | None:
    """The worker's dropped and failed frames, if its /metrics answers."""
    try:
        m = prom.scrape(conn.settings().worker_metrics_url, time.monotonic(), timeout_s=1.0)
    except (httpx.HTTPError, ValueError):  # no worker here: no worker figures
        return None
    dropped = m.by_label("harclip_frames_dropped_total", "reason")
    failed = m.total("harclip_frames_failed_total") or 0
    lag = m.total("harclip_consumer_lag")
    parts = [
        f"dropped {int(sum(dropped.values()))}"
        + (" (" + ", ".join(f"{k} {int(v)}" for k, v in dropped.items()) + ")" if dropped else ""),
        f"dead-lettered {int(failed)}",
    ]
    if lag is not None:
        parts.append(f"consumer lag {int(lag)}")
    return "worker: " + " · ".join(parts)


def render() -> None:
    conn.require_api()
    st.title("Live streams")
    s = conn.settings()
    query = st.text_input("filter", placeholder="stream id contains …", key="live-filter")
    limit = st.slider("streams shown", 1, 48, 12, key="live-limit")

    @st.fragment(run_every=s.refresh_s)
    def grid() -> None:
        now = text.now_ms()
        try:
            listed = conn.client().streams(limit=1000).streams
        except (ApiError, HarclipError) as e:
            st.error(f"streams: {conn.describe(e)}")
            return
        shown = [x for x in listed if query.lower() in x.stream_id.lower()][:limit]
        drops = _drops()
        st.caption(
            f"{len(listed)} streams · refreshed {text.when(now)} UTC"
            + (f" · {drops}" if drops else "")
        )
        if not shown:
            st.info(
                "No streams yet: start a camera (`python -m producers camera ...`), send "
                "frames from the Webcam page, or run `make demo`."
            )
            return
        tiles = [_tile(x.stream_id, x.last_seen) for x in shown]
        if tiles and tiles[0].events_missing:
            st.caption(conn.EVENTS_MISSING)
        for row in range(0, len(tiles), _COLUMNS):
            for col, t in zip(st.columns(_COLUMNS), tiles[row : row + _COLUMNS], strict=False):
                with col:
                    _show(t, now)

    grid()


render()
