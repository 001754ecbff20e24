"""The one rule for picking a few of many images (validation photos, calibration photos):
evenly spread over the sorted list, with an offset so two picks do not overlap."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def spread(items: Sequence[Any], n: int, offset: float = 0.0) -> list[Any]:
    """`n` items evenly spaced over `items` (all of them when there are at most `n`), starting
    `offset` (0..1) of a step in, so two calls with different offsets pick different items."""
    if len(items) <= n:
        return list(items)
    step = len(items) / n
    return [items[int((i + offset) * step)] for i in range(n)]
