"""Watches: standing natural-language / example-image queries scored on every frame.

Two shapes (see docs/watches.md):

- `WatchSpec` is what a user writes (API body, CLI, UI, YAML): prompts, example frames, negatives,
  the streams it applies to and how the events app turns its scores into events.
- `WatchSet` is the `watches` record on `harclip.control`: every watch in force with its vectors,
  built once where the encoders are (the API: text encoder for prompts, image engine for
  examples), and a version that only grows. Workers score with the vectors; the events app
  calibrates and fires with the rest of the spec. A record replaces the whole set.

Scoring (the worker, after the head): for an L2-normalised embedding `x` (mean-pooled over the
watch's `window` frames of its stream, re-normalised), logits `scale · [p·x, n_1·x, …]` with `p`
the watch's positive vector and `n_i` its negative vectors (default negatives when the spec has
none: `DEFAULT_NEGATIVES`), softmax, and the score is the positive's probability.
"""

from __future__ import annotations

import math
from typing import Annotated, Self

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from harclip.messages import Severity

WATCHES_SCHEMA = "harclip.watches/1"

MAX_WATCHES = 1000  # watches in force per deployment
MAX_PROMPTS = 16  # positive prompts per watch, and negatives per watch
MAX_EXAMPLES = 32  # example images per watch
MAX_PROMPT_CHARS = 300  # before the tokenizer's own length check (77 tokens)
MAX_GLOBS = 100
MAX_WINDOW = 64  # frames mean-pooled
MAX_WEBHOOKS = 10
SCORE_FLOOR = 0.05  # scores below this are left out of a Prediction's `watches`
DEFAULT_NEGATIVES = ("a photo of a person", "a photo of an empty room")

_Name = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")]
_Prompt = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_PROMPT_CHARS)
]
_FrameId = Annotated[str, StringConstraints(min_length=1, max_length=200)]
_Glob = Annotated[str, StringConstraints(min_length=1, max_length=256)]
_Url = Annotated[str, StringConstraints(min_length=1, max_length=2048)]


class WatchSpec(BaseModel):
    """A watch as a user defines it. Errors name the field (pydantic's location)."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    name: _Name
    prompts: list[_Prompt] = Field(default_factory=list, max_length=MAX_PROMPTS)
    examples: list[_FrameId] = Field(
        default_factory=list,
        max_length=MAX_EXAMPLES,
        description="frame ids from the history (their keyframe embeddings or images)",
    )
    negatives: list[_Prompt] = Field(default_factory=list, max_length=MAX_PROMPTS)
    streams: list[_Glob] = Field(default_factory=lambda: ["*"], min_length=1, max_length=MAX_GLOBS)
    window: int = Field(1, ge=1, le=MAX_WINDOW, description="frames mean-pooled (per stream)")
    false_alarms_per_hour: float = Field(
        1.0, gt=0, le=3600, description="target false-alarm rate per camera (calibrated threshold)"
    )
    threshold: float = Field(
        0.5, gt=0, lt=1, description="absolute threshold while a camera is calibrating"
    )
    pinned_threshold: float | None = Field(
        None, gt=0, lt=1, description="operator's fixed threshold: no calibration"
    )
    min_duration_seconds: float = Field(1.0, ge=0, le=3600)
    cooldown_seconds: float = Field(60.0, ge=0, le=86400)
    severity: Severity = "warning"
    webhooks: list[_Url] = Field(default_factory=list, max_length=MAX_WEBHOOKS)

    @model_validator(mode="after")
    def _has_a_query(self) -> Self:
        if not self.prompts and not self.examples:
            raise ValueError("a watch needs at least one prompt or example")
        for f in ("false_alarms_per_hour", "threshold"):
            if not math.isfinite(getattr(self, f)):
                raise ValueError(f"{f} must be a finite number")
        return self


class Watch(BaseModel):
    """A watch in force: its spec and its unit vectors (the model's embedding size)."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    spec: WatchSpec
    version: int = Field(ge=1, description="grows with every change of this watch")
    positive: list[float] = Field(description="unit vector of the prompts and examples")
    negatives: list[list[float]] = Field(description="unit vectors of the negative prompts")


class WatchSet(BaseModel):
    """The `watches` record on `harclip.control`: the whole set in force."""

    model_config = ConfigDict(
        frozen=True, extra="forbid", populate_by_name=True, allow_inf_nan=False
    )

    schema_: str = Field(WATCHES_SCHEMA, alias="schema")
    version: int = Field(ge=0, description="grows with every change of the set")
    embed_dim: int = Field(ge=1)
    watches: list[Watch] = Field(default_factory=list, max_length=MAX_WATCHES)
