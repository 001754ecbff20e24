"""The producer CLI refuses a bad stream or job id before it reads settings or sends anything."""

from __future__ import annotations

from pathlib import Path

import pytest

from producers import cli


def _must_not_start(**_: object) -> None:
    raise AssertionError("the CLI went on to load settings (and send) with a bad id")


@pytest.mark.parametrize(
    "argv",
    [
        ["upload", "photo.jpg", "--job-id", "a/b"],
        ["upload", "photo.jpg", "--job-id", ""],
        ["upload", "photo.jpg", "--job-id", "tab\there"],
        ["upload", "photo.jpg", "--job-id", "x" * 129],
        ["camera", "--source", "pattern", "--stream-id", "cam/1"],
        ["synthetic", "--prefix", "a/b"],
    ],
)
def test_a_bad_id_is_a_usage_error_before_sending(
    argv: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(cli, "load_settings", _must_not_start)
    with pytest.raises(SystemExit) as e:
        cli.main(argv)
    assert e.value.code == 2
    assert "printable characters without '/'" in capsys.readouterr().err


@pytest.mark.parametrize("job_id", ["lobby #2", "..", "a%2Fb", "upload-7"])
def test_valid_ids_parse(job_id: str) -> None:
    args = cli.build_parser().parse_args(["upload", "p.jpg", "--job-id", job_id])
    assert args.job_id == job_id and args.paths == [Path("p.jpg")]
