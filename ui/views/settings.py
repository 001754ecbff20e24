"""Settings: where the UI looks (from `HARCLIP_UI__*`), the API key in use (its source only,
never the key), a field to set one for this browser session, and what the API says about
itself; when the API is unreachable, what to start."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from ui import conn, text


def render() -> None:
    st.title("Settings")
    s = conn.settings()
    status = conn.status()
    rows = [
        ("API URL", s.api_url, "HARCLIP_UI__API_URL"),
        ("API key", conn.key_source(), "HARCLIP_UI__API_KEY, or the field below"),
        ("refresh", f"{s.refresh_s:g} s", "HARCLIP_UI__REFRESH_S"),
        ("worker metrics", s.worker_metrics_url, "HARCLIP_UI__WORKER_METRICS_URL"),
        ("events app metrics", s.events_metrics_url, "HARCLIP_UI__EVENTS_METRICS_URL"),
        ("training report", str(s.report or "–"), "HARCLIP_UI__REPORT"),
    ]
    st.dataframe(
        pd.DataFrame(rows, columns=["setting", "value", "from"]), hide_index=True, width="stretch"
    )
    with st.form("settings-key", clear_on_submit=True):
        key = st.text_input(
            "API key for this browser session",
            type="password",
            help="sent as X-API-Key; never shown back",
        )
        a, b = st.columns(2)
        use = a.form_submit_button("Use key")
        forget = b.form_submit_button("Forget session key")
    if use and key.strip():
        conn.set_session_key(key.strip())
        st.rerun()
    if forget:
        conn.set_session_key(None)
        st.rerun()
    st.subheader("API")
    if status.ok:
        st.success(
            f"reachable: model {text.md(status.model)}, head v{status.head_version}, engine "
            f"{text.md(status.engine)}, auth {'on' if status.auth else 'off'}, "
            f"{len(status.labels)} labels"
        )
        if not status.auth:
            st.caption(
                "Auth is off: reads and predict need no key; writes (labels, rules, "
                "webcam ingest) still need an admin key."
            )
    else:
        st.error(f"unreachable: {status.message}")


render()
