"""The feedback cache adapter's section (`HARCLIP_ADAPT__*`): its size caps, the cross-validation
grid and folds, and the gate's margin (docs/feedback.md "Adapter")."""

from __future__ import annotations

from pydantic import Field, field_validator

from harclip.config.base import _Section


class AdaptSettings(_Section):
    per_label_cap: int = Field(
        32, ge=1, le=1024, description="cache items kept per label and scope (the most recent)"
    )
    max_keys: int = Field(
        1024, ge=1, le=16384, description="cache items of one adapter, all scopes together"
    )
    folds: int = Field(5, ge=2, le=20, description="k of the k-fold cross-validation")
    min_items: int = Field(
        10, ge=2, description="labelled feedback items needed before a candidate is built"
    )
    margin: float = Field(
        0.02, ge=0.0, le=1.0, description="held-out accuracy a candidate must gain to be promoted"
    )
    alphas: tuple[float, ...] = Field(
        (0.01, 0.03, 0.1, 0.3, 1.0, 3.0),
        description="grid of the cache's mixing weight, in cosine units (x the head's scale)",
    )
    betas: tuple[float, ...] = Field(
        (1.0, 5.5, 20.0, 50.0, 100.0, 200.0), description="grid of the cache's sharpness"
    )
    if_new: int = Field(
        20, ge=1, description="`adapt build --if-new` default: new feedback items since the last"
    )
    history: int = Field(10, ge=2, le=100, description="adapters kept in Redis for rollback")
    max_feedback: int = Field(
        10_000, ge=10, le=10_000, description="newest feedback documents one build reads"
    )

    @field_validator("alphas", "betas")
    @classmethod
    def _grid(cls, v: tuple[float, ...]) -> tuple[float, ...]:
        if not v or len(v) > 20 or any(x <= 0 for x in v):
            raise ValueError("must be 1 to 20 positive numbers")
        return tuple(sorted(set(v)))
