"""Bounded numbers for command-line options: every numeric option of every command takes one of
these types instead of a bare `int` or `float` (tests/unit/test_argtypes.py scans the code for
that), so `--fps nan`, `--fps inf`, `--limit -1` or `--port 70000` are usage errors that name the
option and the range (argparse prints "argument --fps: ..." and exits 2), never a hang, a silent
clamp or a crash later on."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable


def _range(lo: float | None, hi: float | None, above: float | None) -> str:
    low = f"> {above:g}" if above is not None else (f">= {lo:g}" if lo is not None else "")
    high = f"<= {hi:g}" if hi is not None else ""
    return " and ".join(p for p in (low, high) if p) or "any"


def whole(lo: int | None = None, hi: int | None = None) -> Callable[[str], int]:
    """An argparse type: a whole number in [lo, hi] (either bound optional)."""

    def parse(raw: str) -> int:
        try:
            value = int(raw.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {raw[:40]!r}") from None
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise argparse.ArgumentTypeError(
                f"expected a whole number {_range(lo, hi, None)}, got {value}"
            )
        return value

    parse.__name__ = "whole number"
    return parse


def number(
    lo: float | None = None, hi: float | None = None, *, above: float | None = None
) -> Callable[[str], float]:
    """An argparse type: a finite number in [lo, hi], or > `above` (bounds optional)."""

    def parse(raw: str) -> float:
        try:
            value = float(raw.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {raw[:40]!r}") from None
        if (
            not math.isfinite(value)
            or (above is not None and not value > above)
            or (lo is not None and value < lo)
            or (hi is not None and value > hi)
        ):
            raise argparse.ArgumentTypeError(
                f"expected a finite number {_range(lo, hi, above)}, got {raw[:40]!r}"
            )
        return value

    parse.__name__ = "number"
    return parse


PORT = whole(0, 65535)  # 0: any free port, where the command says so
POSITIVE = whole(1)
RATE = number(above=0)  # frames per second, per hour, learning rates
SECONDS = number(0)
FRACTION = number(0, 1)
