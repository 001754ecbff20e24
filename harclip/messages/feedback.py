"""Feedback: an operator's verdict on a prediction or an event (`harclip.feedback/1`), the document
the feedback index in Elasticsearch holds (one per verdict: conflicting verdicts for one frame are
all kept, the latest `given_at` wins) and the cache adapter learns from (harclip.adapt).

`label` is the right label: the served one for a `correct` verdict, the operator's pick for a
`wrong` one, or None for "none of these". Feedback keeps label *names*: a later label-set change
does not rewrite it, and adapters map by name.
"""

from __future__ import annotations

import unicodedata
from typing import Annotated, ClassVar, Literal

from pydantic import AfterValidator, Field

from harclip.messages.base import Message
from harclip.messages.prediction import ModelRef

FEEDBACK_SCHEMA = "harclip.feedback/1"
MAX_LABEL_CHARS = 64
MAX_NOTE_CHARS = 500

Verdict = Literal["correct", "wrong"]
Target = Literal["frame", "event"]


def _printable(v: str) -> str:
    if any(unicodedata.category(c).startswith("C") for c in v):
        raise ValueError("must not contain control characters")
    return v


FeedbackLabel = Annotated[
    str, Field(min_length=1, max_length=MAX_LABEL_CHARS), AfterValidator(_printable)
]
FeedbackNote = Annotated[str, Field(max_length=MAX_NOTE_CHARS), AfterValidator(_printable)]


class Feedback(Message):
    """One verdict, as stored (Elasticsearch `<feedback_index>`, id `feedback_id`)."""

    SCHEMA: ClassVar[str] = FEEDBACK_SCHEMA
    schema_: str = Field(FEEDBACK_SCHEMA, alias="schema")
    feedback_id: str = Field(min_length=1, max_length=200)
    target: Target
    frame_id: str = Field(min_length=1, max_length=200, description="the frame judged (an "
                          "event's best frame when the target is an event)")  # fmt: skip
    event_id: str | None = Field(None, max_length=200)
    stream_id: str = Field(min_length=1, max_length=200)
    verdict: Verdict
    label: FeedbackLabel | None = Field(description="the right label; None: none of these")
    predicted: str | None = Field(None, description="the label that was served")
    new_label: bool = Field(False, description="the label is not in the served label set")
    note: FeedbackNote | None = None
    by: str = Field(description="name of the API key that gave it")
    given_at: int = Field(description="ms since epoch")
    captured_at: int | None = Field(None, description="the frame's capture time, ms since epoch")
    model: ModelRef | None = Field(None, description="the model that made the judged prediction")
    embedding: list[float] | None = Field(
        None, description="the frame's L2-normalised image embedding (keyframe or recomputed)"
    )
    embedding_model: str | None = Field(
        None, max_length=200, description="name/version of the model whose space `embedding` "
        "is in (the API's or the import's; `model` when absent)",
    )  # fmt: skip
    image: str | None = Field(None, description="object-store key of the frame's JPEG")
