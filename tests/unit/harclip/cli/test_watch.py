"""`harclip watch`: the spec `add` sends, and `eval` only where its module exists."""

from __future__ import annotations

import sys
import types
from typing import Any

import pytest

from harclip.cli import build_parser
from harclip.cli.watch import spec_of


def test_add_sends_only_what_was_given() -> None:
    args = build_parser().parse_args(
        ["watch", "add", "fall", "--prompt", "a person lying on the floor", "--prompt", "fell",
         "--negative", "a person standing", "--streams", "lobby-*", "--window", "4",
         "--pin", "0.8", "--severity", "critical"]
    )  # fmt: skip
    assert spec_of(args) == {
        "name": "fall", "prompts": ["a person lying on the floor", "fell"],
        "negatives": ["a person standing"], "streams": ["lobby-*"], "window": 4,
        "pinned_threshold": 0.8, "severity": "critical",
    }  # fmt: skip
    assert not args.replace and args.action == "add"
    minimal = build_parser().parse_args(["watch", "add", "x", "--example", "f1"])
    assert spec_of(minimal) == {"name": "x", "examples": ["f1"]}


def _subcommands() -> set[str]:
    parser = build_parser()
    watch = parser._subparsers._group_actions[0].choices["watch"]  # type: ignore[union-attr]
    return set(watch._subparsers._group_actions[0].choices)  # type: ignore[union-attr]


def test_eval_comes_from_the_evaluate_module(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "harclip.watches.evaluate", None)  # type: ignore[arg-type]
    assert _subcommands() == {"add", "list", "rm"}
    fake = types.ModuleType("harclip.watches.evaluate")
    seen: list[Any] = []

    def configure(p: Any) -> None:
        p.add_argument("--data")

    def run(args: Any, settings: Any) -> int:
        seen.append(args.data)
        return 3

    fake.configure, fake.run = configure, run  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "harclip.watches.evaluate", fake)
    assert "eval" in _subcommands()
    from harclip.cli import main

    assert main(["watch", "eval", "--data", "d.csv"]) == 3 and seen == ["d.csv"]
