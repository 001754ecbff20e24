"""`harclip feedback import`'s reading of a labelled folder or CSV: bad rows are reported by
line (missing file, a file outside the folder, a bad label) and the rest is kept."""

from __future__ import annotations

from pathlib import Path

import pytest

from harclip.cli.feedback import read_rows
from harclip.errors import HarclipError


def test_csv_rows_report_bad_lines(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "1.jpg").write_bytes(b"x")
    (tmp_path / "outside.jpg").write_bytes(b"x")
    sub = tmp_path / "set"
    sub.mkdir()
    (sub / "ok.jpg").write_bytes(b"x")
    (sub / "labels.csv").write_text(
        "path,label\n"
        "ok.jpg,walking\n"  # line 2
        "missing.jpg,walking\n"  # line 3
        "../outside.jpg,walking\n"  # line 4
        f"ok.jpg,{'x' * 65}\n"  # line 5
        "ok.jpg,bad\x07label\n"  # line 6
        ",walking\n"  # line 7
    )
    rows, problems = read_rows(sub / "labels.csv")
    assert [(r.where, r.label) for r in rows] == [("line 2", "walking")]
    assert [p.split(":")[0] for p in problems] == [f"line {n}" for n in (3, 4, 5, 6, 7)]
    assert "outside" in problems[1]
    assert "label" in problems[2]


def test_a_folder_of_label_folders(tmp_path: Path) -> None:
    for label in ("running", "walking"):
        (tmp_path / label).mkdir()
        (tmp_path / label / "p.jpg").write_bytes(b"x")
    (tmp_path / "walking" / "notes.txt").write_text("not a photo")
    rows, problems = read_rows(tmp_path)
    assert sorted(r.label for r in rows) == ["running", "walking"]
    assert problems == []


def test_a_labelled_folder_uses_its_labels_csv(tmp_path: Path) -> None:
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "p.jpg").write_bytes(b"x")
    (tmp_path / "labels.csv").write_text("path,label\nx/p.jpg,clapping\n")
    rows, _ = read_rows(tmp_path)
    assert [(r.file.name, r.label) for r in rows] == [("p.jpg", "clapping")]


def test_not_a_source(tmp_path: Path) -> None:
    with pytest.raises(HarclipError):
        read_rows(tmp_path / "nothing.txt")
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    with pytest.raises(HarclipError, match="file,label"):
        read_rows(tmp_path / "bad.csv")
