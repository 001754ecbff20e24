"""Labels & rules: the label set in use (names and prompts) with an editor that publishes a new
one (`PUT /labels`, admin key), and the events app's alert rules, viewed and (admin key) edited
as YAML (`PUT /rules`). The API's refusals show as messages."""

from __future__ import annotations

import pandas as pd
import streamlit as st
import yaml

from ui import conn, text
from ui.editors import label_lines, parse_label_lines, parse_rules

_RULES_EXAMPLE = """\
- name: fight
  label: fighting
  min_score: 0.6
  for_seconds: 2
  severity: critical
"""


def _labels() -> None:
    st.header("Labels")
    ls = conn.call(conn.client().labels, what="labels")
    if ls is None:
        return
    st.caption(f"head v{ls.version} · {text.md(ls.kind)} · {len(ls.labels)} labels")
    st.dataframe(
        pd.DataFrame(
            [{"label": n, "prompts": " | ".join(ls.prompts.get(n, []))} for n in ls.labels]
        ),
        hide_index=True,
        width="stretch",
    )
    with st.form("labels-edit"):
        raw = st.text_area(
            "new label set: one `label` or `label: prompt | prompt` per line",
            value=label_lines(ls),
            height=240,
        )
        publish = st.form_submit_button("Publish label set (admin key)")
    if publish:
        names, prompts = parse_label_lines(raw)
        if not names:
            st.error("give at least one label")
            return
        new = conn.call(conn.client().set_labels, names, prompts, what="publish labels")
        if new is not None:
            st.success(
                f"published head v{new.version} with {len(new.labels)} labels; workers "
                "swap it in from their next batch"
            )


def _rules() -> None:
    st.header("Alert rules")
    got = conn.optional(conn.client().rules)
    if got.missing:
        st.info(conn.EVENTS_MISSING)
        return
    if got.error:
        st.error(f"rules: {got.error}")
        return
    doc = got.value
    if doc is None:
        return
    if doc.published:
        st.caption(
            f"{len(doc.rules)} rules published on harclip.control at "
            f"{text.when(doc.updated_at)} UTC"
        )
    else:
        st.caption(
            "No rules published on harclip.control yet: the events app's rules file "
            "(HARCLIP_STREAM__RULES) applies, which the API does not see."
        )
    if doc.rules:
        st.dataframe(pd.DataFrame(doc.rules), hide_index=True, width="stretch")
    current = yaml.safe_dump(doc.rules, sort_keys=False) if doc.rules else _RULES_EXAMPLE
    with st.form("rules-edit"):
        raw = st.text_area("rules (YAML list)", value=current, height=220)
        publish = st.form_submit_button("Publish rules (admin key)")
    if publish:
        try:
            rules = parse_rules(raw)
        except ValueError as e:
            st.error(f"rules: {text.md(e)}")
            return
        new = conn.call(conn.client().set_rules, rules, what="publish rules")
        if new is not None:
            st.success(f"published {len(new.rules)} rules; every events app applies them")


def render() -> None:
    conn.require_api()
    st.title("Labels & rules")
    _labels()
    _rules()


render()
