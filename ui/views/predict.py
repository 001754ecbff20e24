"""Predict: one or many uploaded images, or an image URL, through the API's predict endpoints:
top-k bars per image, the latency, and which model, engine and head version answered. Each file
is its own request, so a corrupt file shows its error and the others their results."""

from __future__ import annotations

import streamlit as st

from harclip.wire import PredictResponse
from ui import charts, conn, text

_TYPES = ["jpg", "jpeg", "png", "webp", "bmp", "gif"]


def show_result(r: PredictResponse, image: bytes | None, engine: str) -> None:
    left, right = st.columns([1, 2])
    if image is not None:
        left.image(image, width="stretch")
    with right:
        st.markdown(f"### {text.md(r.label)} `{r.score:.3f}`")
        st.altair_chart(charts.topk_bars(r.predictions), width="stretch")
        lat = r.latency_ms
        st.caption(
            f"latency {lat.total:.1f} ms (decode {lat.decode:.1f}, queue {lat.queue:.1f}, "
            f"infer {lat.infer:.1f}) · model {text.md(r.model.name)} {text.md(r.model.version)}"
            f" · engine {text.md(r.model.engine or engine)} · head v{r.model.head_version}"
        )


def render() -> None:
    status = conn.require_api()
    st.title("Predict")
    top_k = st.slider("top k", 1, max(1, min(20, len(status.labels) or 20)), 5, key="predict-k")
    files = st.file_uploader("images", type=_TYPES, accept_multiple_files=True, key="predict-files")
    c = conn.client()
    for f in files or []:
        data = f.getvalue()
        with st.container(border=True):
            st.markdown(f"**{text.md(f.name)}** · {len(data):,} bytes")
            r = conn.call(c.predict_bytes, data, f.name, top_k, what=text.md(f.name))
            if r is not None:
                show_result(r, data, status.engine)
    with st.form("predict-url"):
        url = st.text_input("or an image URL", placeholder="https://…/photo.jpg")
        go = st.form_submit_button("Predict URL")
    if go and url.strip():
        with st.container(border=True):
            st.markdown(f"**{text.md(url.strip())}**")
            r = conn.call(c.predict_from_image_url, url.strip(), top_k, what="URL")
            if r is not None:
                show_result(r, None, status.engine)


render()
