"""Watches: the standing text / example-image queries every worker scores (`/watches`): the
list, an editor that adds or replaces one (admin key), removal, and the scores in the latest
prediction of each recent stream. Everything shows as text; the API's refusals as messages."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from ui import conn, text
from ui.watchform import form_of, score_rows, watch_body

_RECENT_STREAMS = 20  # streams whose latest prediction is read for recent scores
_NEW = "(new watch)"


def _list() -> list[str]:
    doc = conn.call(conn.client().list_watches, what="watches")
    if doc is None:
        return []
    st.caption(f"watches v{doc.version} · {len(doc.watches)} in force")
    if doc.watches:
        rows = [{"name": w.spec.name, "version": w.version, "streams": " ".join(w.spec.streams),
                 "prompts": " | ".join(w.spec.prompts), "examples": len(w.spec.examples),
                 "negatives": " | ".join(w.spec.negatives) or "(defaults)",
                 "window": w.spec.window, "false alarms/h": w.spec.false_alarms_per_hour,
                 "pinned": w.spec.pinned_threshold, "severity": w.spec.severity}
                for w in doc.watches]  # fmt: skip
        st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
    return [w.spec.name for w in doc.watches]


def _editor(names: list[str]) -> None:
    st.subheader("Add or edit")
    chosen = st.selectbox("watch", [_NEW, *names], key="watch-pick")
    spec = None
    if chosen != _NEW:
        info = conn.call(conn.client().get_watch, chosen, what="watch")
        spec = info.spec if info is not None else None
    v = form_of(spec)
    with st.form("watch-edit"):
        name = st.text_input("name", value=v["name"], disabled=spec is not None)
        form = {
            "prompts": st.text_area("prompts (one per line)", value=v["prompts"]),
            "examples": st.text_area("example frame ids (one per line)", value=v["examples"]),
            "negatives": st.text_area("negative prompts (one per line; empty: defaults)",
                                      value=v["negatives"]),
            "streams": st.text_area("streams (globs, one per line)", value=v["streams"]),
            "window": st.number_input("window (frames)", 1, 64, int(v["window"])),
            "false_alarms_per_hour": st.number_input(
                "target false alarms per hour", value=float(v["false_alarms_per_hour"])),
            "threshold": st.number_input("threshold while calibrating",
                                         value=float(v["threshold"])),
            "pinned_threshold": st.number_input("pinned threshold (0: calibrated)",
                                                value=float(v["pinned_threshold"])),
            "min_duration_seconds": st.number_input("minimum duration (s)",
                                                    value=float(v["min_duration_seconds"])),
            "cooldown_seconds": st.number_input("cooldown (s)",
                                                value=float(v["cooldown_seconds"])),
            "severity": st.selectbox("severity", ["info", "warning", "critical"],
                                     index=["info", "warning", "critical"].index(v["severity"])),
            "webhooks": st.text_area("webhooks (one URL per line)", value=v["webhooks"]),
        }  # fmt: skip
        publish = st.form_submit_button("Publish watch (admin key)")
    if publish:
        target = spec.name if spec is not None else name.strip()
        if not target:
            st.error("name: give the watch a name")
            return
        new = conn.call(conn.client().put_watch, target, watch_body(form), what="publish watch")
        if new is not None:
            st.success(f"published watch {text.md(new.spec.name)} v{new.version}; workers "
                       "score it from their next batch")  # fmt: skip


def _remove(names: list[str]) -> None:
    if not names:
        return
    st.subheader("Remove")
    with st.form("watch-remove"):
        name = st.selectbox("watch", names)
        remove = st.form_submit_button("Remove watch (admin key)")
    if remove and name:
        doc = conn.call(conn.client().delete_watch, name, what="remove watch")
        if doc is not None:
            st.success(f"removed {text.md(name)}: {len(doc.watches)} watches in force")


def _recent() -> None:
    st.subheader("Recent scores")
    streams = conn.call(conn.client().streams, limit=_RECENT_STREAMS, what="streams")
    if streams is None:
        return
    latest = []
    for s in streams.streams[:_RECENT_STREAMS]:
        got = conn.optional(conn.client().latest, s.stream_id)
        if got.value is not None:
            latest.append(got.value)
    rows = score_rows(latest)
    if not rows:
        st.caption("No watch scored above the floor in the latest prediction of a recent stream.")
        return
    for r in rows:
        r["captured_at"] = text.when(r["captured_at"])
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")


def render() -> None:
    conn.require_api()
    st.title("Watches")
    names = _list()
    _editor(names)
    _remove(names)
    _recent()


render()
