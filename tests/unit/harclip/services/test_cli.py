"""`harclip services ...` as a user runs it, on a state folder where nothing was started."""

from __future__ import annotations

from pathlib import Path

import pytest

from harclip.cli import main


def test_status_of_nothing_started_is_stopped_and_exit_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HARCLIP_SERVICES__STATE_DIR", str(tmp_path))
    assert main(["services", "status"]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[:2] for line in lines] == [
        ["kafka", "stopped"],
        ["elasticsearch", "stopped"],
        ["redis", "stopped"],
        ["objects", "stopped"],
    ]


def test_down_of_nothing_started_stops_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HARCLIP_SERVICES__STATE_DIR", str(tmp_path))
    assert main(["services", "down", "redis"]) == 0
    assert capsys.readouterr().out.split()[:2] == ["redis", "stopped"]


def test_unknown_service_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["services", "status", "zookeeper"]) == 2
    assert "unknown service(s) zookeeper" in capsys.readouterr().err
