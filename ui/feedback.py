"""The UI's feedback: "right" / "wrong → pick the label" buttons under a prediction or an event
(sent with the key of this session: a read-only key's refusal is shown as the API's words, as
text), and the online-accuracy table of the performance page. The pure parts (what a choice
means, the table's rows) are separate so a unit test checks them without Streamlit or an API."""

from __future__ import annotations

from collections.abc import Sequence

import streamlit as st

from harclip.errors import HarclipError
from harclip.messages.feedback import MAX_LABEL_CHARS
from harclip.wire.feedback import FeedbackCounts
from ui import conn

NONE_OF_THESE = "(none of these)"
NEW_LABEL = "(a new label…)"


def chosen_label(choice: str, new_text: str) -> str | None:
    """The right label a "wrong" choice gives: a label of the set, None for none of these, or the
    typed new label (`ValueError` when it is blank or too long)."""
    if choice == NONE_OF_THESE:
        return None
    if choice != NEW_LABEL:
        return choice
    label = new_text.strip()
    if not label:
        raise ValueError("type the new label")
    if len(label) > MAX_LABEL_CHARS:
        raise ValueError(f"a label has at most {MAX_LABEL_CHARS} characters")
    return label


def choices(labels: Sequence[str], served: str | None) -> list[str]:
    """What "wrong" offers: the other labels of the set, none of these, a new label."""
    return [x for x in labels if x != served] + [NONE_OF_THESE, NEW_LABEL]


def agreement_rows(counts: FeedbackCounts) -> list[dict[str, object]]:
    """One row per stream and label (served, with `group=predicted`): verdicts and the share
    found correct."""
    rows: list[dict[str, object]] = []
    for c in counts.items:
        total = c.correct + c.wrong
        rows.append({"stream": c.stream_id, "label": c.label or NONE_OF_THESE,
                     "correct": c.correct, "wrong": c.wrong,
                     "agreement": round(c.correct / total, 3) if total else None})  # fmt: skip
    return rows


def _send(**kw: object) -> None:
    try:
        fb = conn.client().give_feedback(**kw)  # type: ignore[arg-type]
    except (HarclipError, ValueError) as e:
        st.error(f"feedback: {conn.describe(e)}")  # the API's words, escaped: text
        return
    st.success("thanks: recorded" if fb.verdict == "correct" else "thanks: the right label is "
               "recorded")  # fmt: skip


def buttons(
    key: str, served: str | None, *, frame_id: str | None = None, event_id: str | None = None
) -> None:
    """ "right" and "wrong → pick the label" for one frame or event (`key` unique on the page and
    stable across refreshes). A click judges what was shown when it was clicked: on a live page
    the rerun a click starts may already show a newer frame, so the target of the previous run
    (kept in session state) is the one sent."""
    labels = conn.status().labels
    shown_key = f"fb-shown-{key}"
    current = (frame_id, event_id, served)
    shown = st.session_state.get(shown_key) or current
    target = {"frame_id": shown[0], "event_id": shown[1]}
    right, wrong = st.columns(2)
    if right.button("right", key=f"fb-ok-{key}", icon=":material/thumb_up:"):
        _send(verdict="correct", **target)
    with wrong.popover("wrong", icon=":material/thumb_down:"):
        pick = st.selectbox("the right label", choices(labels, shown[2]), key=f"fb-pick-{key}")
        typed = ""
        if pick == NEW_LABEL:
            typed = st.text_input("new label", max_chars=MAX_LABEL_CHARS, key=f"fb-new-{key}")
        note = st.text_input("note (optional)", max_chars=500, key=f"fb-note-{key}")
        if st.button("send", key=f"fb-send-{key}"):
            try:
                label = chosen_label(pick, typed)
            except ValueError as e:
                st.error(conn.describe(e))
            else:
                _send(verdict="wrong", label=label, note=note.strip() or None, **target)
    st.session_state[shown_key] = current


def accuracy_section() -> None:
    """The performance page's online accuracy: the latest verdicts per stream and served label."""
    st.subheader("Online accuracy (feedback)")
    got = conn.optional(conn.client().feedback_counts, group="predicted")
    if got.missing:
        st.caption("This API has no feedback endpoints.")
        return
    if got.error:
        st.warning(f"feedback counts: {got.error}")
        return
    counts = got.value
    if counts is None or not counts.items:
        st.caption("No feedback yet: use the right / wrong buttons on the Stream and Search pages.")
        return
    a, b, c = st.columns(3)
    a.metric("agreement", "–" if counts.agreement is None else f"{counts.agreement:.1%}")
    b.metric("correct", f"{counts.correct:,}")
    c.metric("wrong", f"{counts.wrong:,}")
    st.dataframe(agreement_rows(counts), hide_index=True, width="stretch")
    if counts.truncated:
        st.caption("Counted over the newest 10,000 judged frames.")
