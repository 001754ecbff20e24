"""harclip.model.fetch without services: folders, bad sources, a broken bundle, a version
mismatch; DEST is replaced only by a verified bundle."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from harclip.model.bundle import MANIFEST, Bundle
from harclip.model.fetch import FetchError, fetch, main


def test_fetch_from_a_folder_verifies_and_moves_into_place(
    tiny_bundle: Path, tmp_path: Path
) -> None:
    dest = tmp_path / "models" / "current"
    manifest = fetch(str(tiny_bundle), dest)
    assert manifest == Bundle.load(tiny_bundle).manifest
    assert Bundle.load(dest).manifest.version == manifest.version
    assert (dest / "SOURCE").read_text().strip() == str(tiny_bundle)
    assert sorted(p.name for p in dest.parent.iterdir()) == ["current"]  # no staging left


def test_a_broken_bundle_leaves_dest_as_it_was(tiny_bundle: Path, tmp_path: Path) -> None:
    dest = tmp_path / "current"
    fetch(str(tiny_bundle), dest)
    broken = tmp_path / "broken"
    shutil.copytree(tiny_bundle, broken)
    (broken / Bundle.load(broken).manifest.head).unlink()
    with pytest.raises(FetchError, match="not a valid bundle"):
        fetch(f"file://{broken}", dest)
    Bundle.load(dest)  # still the good one


def test_expect_version(tiny_bundle: Path, tmp_path: Path) -> None:
    with pytest.raises(FetchError, match=r"expected '0\.0\.0-nope'"):
        fetch(str(tiny_bundle), tmp_path / "current", expect_version="0.0.0-nope")
    assert not (tmp_path / "current").exists()


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("", "no model source"),
        ("/nowhere/at/all", "no such folder"),
        ("s3:///prefix", "expected s3://BUCKET/PREFIX"),
        ("s3://NO_SUCH/x", "bad bucket name"),
    ],
)
def test_bad_sources_name_the_cause(source: str, message: str, tmp_path: Path) -> None:
    with pytest.raises(FetchError, match=message):
        fetch(source, tmp_path / "current")


def test_a_folder_without_manifest(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(FetchError, match=f"holds no {MANIFEST}"):
        fetch(str(tmp_path / "empty"), tmp_path / "current")


def test_main_exits_1_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["/nowhere", "--dest", str(tmp_path / "c")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("model-fetch: /nowhere: no such folder") and err.count("\n") == 1
