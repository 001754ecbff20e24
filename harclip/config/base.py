"""The base of every settings section: frozen, and no field beyond those declared (a misspelt
`HARCLIP_*` variable inside a section fails at start-up)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)
