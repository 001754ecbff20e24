"""Feedback over HTTP: the body of `POST /feedback` (a verdict on a frame or an event), the page
`GET /feedback` answers and the counts of `GET /feedback/counts`. The stored document is
`harclip.messages.Feedback`; the API returns it without its embedding."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field, model_validator

from harclip.messages.feedback import Feedback, FeedbackLabel, FeedbackNote, Verdict
from harclip.wire.base import WireModel, _Request

MAX_FEEDBACK_LIMIT = 1000  # items per GET /feedback answer
CountGroup = Literal["label", "predicted"]


class FeedbackRequest(_Request):
    """A verdict on one frame (`frame_id`) or one event (`event_id`: its best frame is judged);
    exactly one of them. `label` is the right label of a `wrong` verdict (an existing label or a
    new one; null or absent: "none of these"); a `correct` verdict takes the served label, so a
    `label` given with it must be that label."""

    frame_id: str | None = Field(None, min_length=1, max_length=200)
    event_id: str | None = Field(None, min_length=1, max_length=200)
    verdict: Verdict
    label: FeedbackLabel | None = Field(None, description="the right label (wrong verdicts)")
    note: FeedbackNote | None = None

    model_config = ConfigDict(
        frozen=True,
        allow_inf_nan=False,
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"frame_id": "0192b1c4d5e6f7a8b9c0d1e2f3a4b5c6", "verdict": "wrong",
                 "label": "cycling", "note": "he is on a bike"}
            ]
        },
    )  # fmt: skip

    @model_validator(mode="after")
    def _one_target(self) -> FeedbackRequest:
        if (self.frame_id is None) == (self.event_id is None):
            raise ValueError("give exactly one of 'frame_id' or 'event_id'")
        return self


class FeedbackPage(WireModel):
    """Verdicts, newest first (`given_at`), embeddings left out. With `all` false (the default)
    only each frame's latest verdict is listed: the latest wins."""

    items: list[Feedback]
    truncated: bool = Field(False, description="more matched than were scanned or returned")


class FeedbackCount(WireModel):
    """The latest verdicts of one stream and label: the right label, or the served one when the
    counts are grouped by `predicted` (null: none of these / nothing served)."""

    stream_id: str
    label: str | None
    correct: int = 0
    wrong: int = 0


class FeedbackCounts(WireModel):
    """Counts of the frames' latest verdicts per stream and label, and in all."""

    items: list[FeedbackCount]
    group: CountGroup = Field("label", description="label: per right label; predicted: per "
                              "served label (the online accuracy of each)")  # fmt: skip
    correct: int = 0
    wrong: int = 0
    agreement: float | None = Field(
        None, description="correct / (correct + wrong): how often the served prediction was right"
    )
    truncated: bool = Field(False, description="only the newest frames were counted (scan cap)")
