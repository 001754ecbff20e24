"""The pure parts of the UI's feedback buttons and accuracy table."""

from __future__ import annotations

import pytest

from harclip.wire.feedback import FeedbackCount, FeedbackCounts
from ui import feedback


def test_choices_leave_out_the_served_label() -> None:
    got = feedback.choices(["walking", "running"], "walking")
    assert got == ["running", feedback.NONE_OF_THESE, feedback.NEW_LABEL]


def test_chosen_label() -> None:
    assert feedback.chosen_label("running", "ignored") == "running"
    assert feedback.chosen_label(feedback.NONE_OF_THESE, "") is None
    assert feedback.chosen_label(feedback.NEW_LABEL, "  juggling ") == "juggling"
    with pytest.raises(ValueError, match="type the new label"):
        feedback.chosen_label(feedback.NEW_LABEL, "  ")
    with pytest.raises(ValueError, match="64"):
        feedback.chosen_label(feedback.NEW_LABEL, "x" * 65)


def test_agreement_rows() -> None:
    counts = FeedbackCounts(
        items=[FeedbackCount(stream_id="cam", label="walking", correct=3, wrong=1),
               FeedbackCount(stream_id="cam", label=None, correct=0, wrong=2)],
        correct=3, wrong=3, agreement=0.5,
    )  # fmt: skip
    rows = feedback.agreement_rows(counts)
    assert rows[0] == {"stream": "cam", "label": "walking", "correct": 3, "wrong": 1,
                       "agreement": 0.75}  # fmt: skip
    assert rows[1]["label"] == feedback.NONE_OF_THESE and rows[1]["agreement"] == 0.0
