"""What every page run shares: the page setup, the sidebar (API, key field, model), the banner
when the API is unreachable, and the navigation between the pages in `ui/views/`."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from ui import conn

VIEWS = Path(__file__).parent / "views"

# (file in ui/views, title, icon, url path); the first is the default page.
PAGES: tuple[tuple[str, str, str, str], ...] = (
    ("live.py", "Live streams", ":material/grid_view:", "live"),
    ("stream.py", "Stream", ":material/videocam:", "stream"),
    ("predict.py", "Predict", ":material/image_search:", "predict"),
    ("webcam.py", "Webcam", ":material/photo_camera:", "webcam"),
    ("search.py", "Search & events", ":material/search:", "search"),
    ("labels.py", "Labels & rules", ":material/label:", "labels"),
    ("watches.py", "Watches", ":material/visibility:", "watches"),
    ("performance.py", "Performance", ":material/speed:", "performance"),
    ("settings.py", "Settings", ":material/settings:", "settings"),
)


def _pages() -> list[st.Page]:
    return [
        st.Page(VIEWS / f, title=t, icon=i, url_path=u, default=n == 0)
        for n, (f, t, i, u) in enumerate(PAGES)
    ]


def _key_form() -> None:
    if conn.signed_in():
        if st.sidebar.button("Sign out", key="sign-out"):
            conn.set_session_key(None)
            st.rerun()
        return
    with st.sidebar.form("api-key", clear_on_submit=True, border=False):
        key = st.text_input(
            "API key",
            type="password",
            placeholder="your X-API-Key",
            help="sign in: this browser session acts with your key (kept for this session "
            "only, never shown back); writes need an admin key",
        )
        if st.form_submit_button("Sign in") and key.strip():
            conn.set_session_key(key.strip())
            st.rerun()


def _sidebar(status: conn.ApiStatus) -> None:
    s = conn.settings()
    sb = st.sidebar
    sb.caption(f"API: `{s.api_url}`")
    if status.ok:
        sb.caption(f"model {status.model} · head v{status.head_version} · engine {status.engine}")
    sb.caption(f"key: {conn.key_source()}")
    _key_form()


RANDOM_WEIGHTS = (
    "Random weights: the served model is a randomly initialised CLIP (harclip init-model, the "
    "offline default of make demo), so its labels and scores mean nothing. Serve real weights "
    "with make demo MODEL=openai/clip-vit-base-patch32 (or a folder), or BUNDLE=<bundle folder>."
)

_RETRY_S = 5.0  # an unreachable API is asked again this often; the page reruns once it answers


def banner(status: conn.ApiStatus) -> None:
    """A clear error at the top of every page when the API cannot be reached (the page comes
    back by itself once it answers), else a plain-text warning when the served model has
    random weights."""
    if not status.ok:
        st.error(
            f"**API unreachable.** {status.message}\n\n"
            "The UI needs the harclip API (and, for live views, a worker and the services): "
            "`make demo` starts everything; or `harclip services up`, "
            "`python -m consumers --bundle B`, `python -m api --bundle B`. "
            "Set `HARCLIP_UI__API_URL` if it runs elsewhere.",
            icon=":material/cloud_off:",
        )
        _retry()
    elif status.random_weights:
        # plain text (st.text), so nothing in it reads as Markdown
        with st.container(border=True, key="random-weights"):
            st.text("⚠ " + RANDOM_WEIGHTS)


@st.fragment(run_every=_RETRY_S)
def _retry() -> None:
    if conn.status().ok:
        st.rerun()


def main() -> None:
    # An emoji icon: a `:material/...:` favicon is fetched from fonts.gstatic.com by the page.
    st.set_page_config(page_title="harclip live view", page_icon="👁️", layout="wide")
    page = st.navigation(_pages())
    status = conn.status()
    _sidebar(status)
    banner(status)
    refused = conn.server_key_refused() if status.ok and not conn.signed_in() else None
    if refused:
        st.warning(refused, icon=":material/key_off:")
    page.run()
