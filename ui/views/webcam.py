"""Webcam: the browser's camera (`st.camera_input`); each photo taken goes through the API's
WebSocket ingest (`Client.ingest`) into Kafka under the stream id chosen here, like a camera
producer's frames, and the worker's predictions for the stream show below as they arrive.
Ingest needs an admin key (or a predict key whose scope includes the stream)."""

from __future__ import annotations

import streamlit as st

from harclip.client import NotFound
from harclip.errors import HarclipError
from harclip.ids import STREAM_ID_RULE, source_stream_id_problem
from harclip.wire import Ack
from ui import charts, conn, frames, text

_SENT = "webcam-sent"  # session state: [(stream id, Ack, when sent ms)], newest last


def _send(stream_id: str, photo: bytes) -> None:
    # a person waits on the page: a refusal that would keep them waiting long is shown instead
    acks = conn.call(conn.client().ingest, stream_id, [photo], what="ingest", retry_for_s=5)
    if not acks:
        return
    ack: Ack = acks[0]
    frames.store().put(ack.frame_id, photo)
    st.session_state.setdefault(_SENT, []).append((stream_id, ack, text.now_ms()))
    st.success(
        f"sent to {text.md(stream_id)}: frame {text.md(ack.frame_id)} (seq {ack.seq}) is in Kafka"
    )


def render() -> None:
    conn.require_api()
    st.title("Webcam")
    st.caption(
        "Each photo is sent through the API's ingest WebSocket; the inference worker "
        "predicts it like any camera frame."
    )
    stream_id = st.text_input("stream id", value="webcam", key="webcam-stream").strip()
    problem = source_stream_id_problem(stream_id)
    if problem:
        st.error(f"stream id {problem}: it must be {STREAM_ID_RULE}")
        return
    photo = st.camera_input("camera", key="webcam-photo")
    if photo is not None:
        marker = (stream_id, photo.file_id)
        if st.session_state.get("webcam-last") != marker:  # send each photo once
            st.session_state["webcam-last"] = marker
            _send(stream_id, photo.getvalue())

    @st.fragment(run_every=conn.settings().refresh_s)
    def predictions() -> None:
        st.subheader(f"Predictions for {text.md(stream_id)}")
        sent = [x for x in st.session_state.get(_SENT, []) if x[0] == stream_id]
        try:
            latest = conn.client().latest(stream_id)
        except NotFound:
            st.info("No prediction for this stream yet (a worker must be running).")
            return
        except (HarclipError, ValueError) as e:  # shown to the user, never a traceback
            st.error(f"latest: {conn.describe(e)}")
            return
        last = sent[-1][1] if sent else None
        if last is not None and last.frame_id != latest.frame_id and last.seq > latest.seq:
            st.caption(f"waiting for the prediction of frame {text.md(last.frame_id)} …")
        left, right = st.columns([1, 2])
        thumb = frames.store().get(latest.frame_id)
        if thumb:
            left.image(thumb, caption=f"frame {latest.frame_id}")
        with right:
            st.markdown(f"### {text.md(latest.label)} `{latest.score:.3f}`")
            st.altair_chart(charts.topk_bars(latest.top_k), width="stretch")
            st.caption(
                f"seq {latest.seq} · captured {text.when(latest.captured_at)} UTC · "
                f"{latest.latency_ms.total:.0f} ms end to end · head "
                f"v{latest.model.head_version}"
            )
        if sent:
            st.caption(f"{len(sent)} photo(s) sent from this page to {text.md(stream_id)}")

    predictions()


render()
