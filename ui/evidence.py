"""Evidence on the Search & events page: the pictures of search hits (the worker's keyframe
thumbnails) and of events (their thumbnail or snapshot), and an event's clip, fetched through the
client with the key of this session. The pure parts (what an event has, how it reads, which
video format its clip is) are separate so a unit test checks them without Streamlit or an API."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import streamlit as st

from harclip.client import Client, NotFound
from harclip.errors import HarclipError
from harclip.messages import Event
from harclip.wire import SearchHit
from ui import conn, feedback, text

_MISSING = {
    "frames_expired": "no evidence: its frames had left Kafka",
    "no_frames": "no evidence: the camera sent no frames then",
    "disabled": "no evidence: evidence is turned off",
    "failed": "no evidence: writing it failed",
}


def has_picture(ev: Event) -> bool:
    e = ev.evidence
    return e is not None and bool(e.thumbnail or e.snapshot)


def has_clip(ev: Event) -> bool:
    return ev.evidence is not None and bool(ev.evidence.clip)


_WITH_EVIDENCE = ("segment.start", "segment.end", "alert", "watch.start", "watch.end")


def evidence_state(ev: Event) -> str:
    """A short plain-text note of what evidence the event has (the events table's column)."""
    e = ev.evidence
    if e is None:
        return "pending" if ev.type in _WITH_EVIDENCE else ""
    if e.missing is not None:
        return _MISSING.get(e.missing, f"no evidence: {e.missing}")
    parts = [name for name in ("snapshot", "clip") if getattr(e, name)]
    return " + ".join(parts) if parts else "pending"


def clip_format(ev: Event) -> str:
    """The clip's MIME type for `st.video`, by its key's extension."""
    key = (ev.evidence.clip if ev.evidence is not None else None) or ""
    return "video/webm" if key.lower().endswith(".webm") else "video/mp4"


def event_caption(ev: Event) -> str:
    """One line of plain text about the event (shown with `st.text`: data is never markup)."""
    what = ev.label or ev.type
    rule = f" · rule {ev.rule}" if ev.rule else ""
    seconds = "" if ev.start is None or ev.end is None else f" · {(ev.end - ev.start) / 1000:g} s"
    if ev.adapter is not None:
        return f"{ev.type}: {adapter_note(ev)}"
    return f"{what} on {ev.stream_id}{rule}{watch_note(ev)}{seconds}"


def adapter_note(ev: Event) -> str:
    """`v2 in force (gate; was v1)` for an adapter.promoted event, else empty (plain text)."""
    a = ev.adapter
    if a is None:
        return ""
    now = "no adapter" if a.version is None else f"v{a.version}"
    was = "none" if a.previous is None else f"v{a.previous}"
    return f"{now} in force ({a.reason}; was {was})"


def watch_note(ev: Event) -> str:
    """` · watch NAME (calibrated 0.43)` for a watch event, else empty (plain text)."""
    if not ev.watch:
        return ""
    how = ""
    if ev.threshold is not None:
        how = f" ({ev.calibration or 'threshold'} {ev.threshold:.3g})"
    return f" · watch {ev.watch}{how}"


def segment_evidence(events: Sequence[Event], limit: int = 8) -> list[Event]:
    """One event per segment that has a picture, newest segment first: its `segment.end` (which
    has the clip), else its `segment.start` (an open segment's snapshot). Pure."""
    best: dict[tuple[str | None, int | None], Event] = {}
    for e in events:
        if e.type not in ("segment.start", "segment.end") or not has_picture(e):
            continue
        key = (e.label, e.first_seq)
        if key not in best or (e.type == "segment.end" and best[key].type != "segment.end"):
            best[key] = e
    return sorted(best.values(), key=lambda e: e.start or 0, reverse=True)[:limit]


def cards(items: Sequence[Event], *, title: str, key: str, per_row: int = 4) -> None:
    """Event cards: picture, one line of text, feedback buttons and a button that plays the clip
    below them (`key` names this set of cards in the session: buttons and the event whose clip is
    shown)."""
    if not items:
        return
    st.subheader(title)
    c = conn.client()
    cols = st.columns(per_row)
    for i, ev in enumerate(items):
        with cols[i % per_row], st.container(border=True):
            picture = event_picture(c, ev)
            if picture:
                st.image(picture, width="stretch")
            else:
                st.caption("no picture yet")
            st.text(event_caption(ev))
            st.caption(f"{text.when(ev.start or ev.emitted_at)} UTC")
            feedback.buttons(f"{key}-event-{ev.event_id}", ev.label, event_id=ev.event_id)
            if has_clip(ev) and st.button(
                "play clip", key=f"{key}-{ev.event_id}", icon=":material/play_circle:"
            ):
                st.session_state[key] = ev.event_id
    playing = next((ev for ev in items if ev.event_id == st.session_state.get(key)), None)
    if playing is not None:
        st.text(f"clip: {event_caption(playing)}")
        clip = conn.call(c.event_clip, playing.event_id, what="clip")
        if clip:
            left, _ = st.columns(2)
            left.video(clip, format=clip_format(playing))


def _fetch(fn: Callable[[str], bytes], ident: str) -> bytes | None:
    try:
        return fn(ident)
    except NotFound:
        return None
    except (HarclipError, ValueError):  # the picture is an extra: the page goes on without it
        return None


def event_picture(client: Client, ev: Event) -> bytes | None:
    """The event's thumbnail, else its snapshot; None when it has neither (yet)."""
    e = ev.evidence
    if e is None:
        return None
    if e.thumbnail and (data := _fetch(client.event_thumbnail, ev.event_id)) is not None:
        return data
    return _fetch(client.event_snapshot, ev.event_id) if e.snapshot else None


def hit_picture(client: Client, hit: SearchHit) -> bytes | None:
    """A search hit's keyframe thumbnail from the API (kept a while per API, key and frame: a
    frame's thumbnail never changes); None when it has none."""
    if hit.thumbnail is None:
        return None
    return _thumbnail(client, str(client.url), hit.prediction.frame_id)


# keyed by the client object: the UI keeps one per (API URL, key) (`ui.conn`)
@st.cache_data(ttl=600, max_entries=2000, show_spinner=False, hash_funcs={Client: id})
def _thumbnail(client: Client, url: str, frame_id: str) -> bytes | None:
    return _fetch(client.frame_thumbnail, frame_id)
