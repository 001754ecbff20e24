"""Watches: standing queries scored on every frame (see `harclip.watches.spec`)."""

from harclip.watches.spec import (
    DEFAULT_NEGATIVES,
    SCORE_FLOOR,
    WATCHES_SCHEMA,
    Watch,
    WatchSet,
    WatchSpec,
)

__all__ = ["DEFAULT_NEGATIVES", "SCORE_FLOOR", "WATCHES_SCHEMA", "Watch", "WatchSet", "WatchSpec"]
