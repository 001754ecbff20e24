"""`harclip adapt` argument checks (no services needed)."""

from __future__ import annotations

import pytest

from harclip.cli import build_parser


def test_build_options_parse() -> None:
    args = build_parser().parse_args(["adapt", "build", "--if-new", "--streams", "dock-*",
                                      "--streams", "*", "--dry-run"])  # fmt: skip
    assert (args.if_new, args.streams, args.dry_run) == (-1, ["dock-*", "*"], True)
    assert build_parser().parse_args(["adapt", "build", "--if-new", "5"]).if_new == 5
    assert build_parser().parse_args(["adapt", "promote"]).version is None


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["adapt", "build", "--if-new", "0"], "a whole number >= 1"),
        (["adapt", "build", "--if-new", "x"], "whole number"),
        (["adapt", "build", "--streams", ""], "stream glob"),
        (["adapt", "promote", "-3"], "a whole number >= 1"),
        (["adapt", "frobnicate"], "invalid choice"),
    ],
)
def test_bad_arguments_name_what_is_wrong(
    argv: list[str], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as e:
        build_parser().parse_args(argv)
    assert e.value.code == 2 and says in capsys.readouterr().err


def test_status_names_promotion_events_not_sent() -> None:
    from harclip.cli.adapt import _describe

    st = {"in_force": None, "kept": [1, 2], "event_failures": 1, "history": [
        {"at": 5, "action": "rollback", "version": 1, "previous": 2, "event_sent": False},
        {"at": 4, "action": "gate", "version": 2, "previous": 1},  # before events were sent
    ]}  # fmt: skip
    text = _describe(st)
    assert "5: rollback v1 (was v2) (event not sent)" in text
    assert "4: gate v2 (was v1)\n" in text
    assert "adapter.promoted events not sent: 1" in text
