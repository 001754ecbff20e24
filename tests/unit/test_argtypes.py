"""Numeric command-line options are bounded (`harclip.argtypes`): no command of the product takes
a bare `type=int` / `type=float` (which accept `nan`, `inf` and negatives: `--fps nan` made the
synthetic producer spin and ignore SIGTERM), and the types say what was wrong."""

from __future__ import annotations

import argparse
import ast
from pathlib import Path

import pytest

from harclip.argtypes import FRACTION, PORT, POSITIVE, RATE, SECONDS, number, whole

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("harclip", "producers", "consumers", "api", "stream", "ui", "training")


def _bare_numeric_options() -> list[str]:
    found = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                    continue
                if node.func.attr != "add_argument":
                    continue
                found += [
                    f"{path.relative_to(ROOT)}:{node.lineno}"
                    for kw in node.keywords
                    if kw.arg == "type"
                    and isinstance(kw.value, ast.Name)
                    and kw.value.id in ("int", "float")
                ]
    return found


def test_no_command_takes_a_bare_int_or_float() -> None:
    assert _bare_numeric_options() == []


@pytest.mark.parametrize(
    ("kind", "raw", "why"),
    [
        (RATE, "nan", "expected a finite number > 0, got 'nan'"),
        (RATE, "inf", "expected a finite number > 0, got 'inf'"),
        (RATE, "0", "expected a finite number > 0, got '0'"),
        (SECONDS, "-5", "expected a finite number >= 0, got '-5'"),
        (FRACTION, "1.5", "expected a finite number >= 0 and <= 1, got '1.5'"),
        (POSITIVE, "0", "expected a whole number >= 1, got 0"),
        (POSITIVE, "2.5", "expected a whole number, got '2.5'"),
        (PORT, "70000", "expected a whole number >= 0 and <= 65535, got 70000"),
        (whole(1, 1000), "-1", "expected a whole number >= 1 and <= 1000, got -1"),
        (number(), "ten", "expected a number, got 'ten'"),
    ],
)
def test_out_of_range_values_say_why(kind: object, raw: str, why: str) -> None:
    parser = argparse.ArgumentParser(prog="t", exit_on_error=False)
    parser.add_argument("--x", type=kind)  # type: ignore[arg-type]
    with pytest.raises(argparse.ArgumentError, match=f"argument --x: {why}"):
        parser.parse_args(["--x", raw])


def test_values_in_range_parse() -> None:
    assert RATE(" 2.5") == 2.5 and SECONDS("0") == 0.0 and FRACTION("1") == 1.0
    assert POSITIVE("3") == 3 and PORT("0") == 0 and whole(0)("0") == 0 and number()("-1e3") == -1e3
