"""A data source is data, not instructions: class names cannot place files outside the cache,
image cells cannot read files outside the dataset, CSV rows and folders cannot list files
outside their root, and names from the data are printed as text, never as Rich markup."""

from __future__ import annotations

import io
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from rich.console import Console

from training import progress
from training.cli import main
from training.config import DataConfig
from training.data.sources import list_source
from training.errors import DataError


def _jpeg(i: int = 0) -> bytes:
    ok, buf = cv2.imencode(".jpg", np.full((24, 32, 3), 25 * i % 256, np.uint8))
    assert ok
    return bytes(buf)


def _saved(
    tmp_path: Path, names: list[str], cells: list[dict[str, object]], *, raw: bool = False
) -> Path:
    """A dataset saved with `save_to_disk`; `raw` keeps the cells as plain {bytes, path}
    structs, as a crafted dataset can (an `Image` column would embed the files at once)."""
    from datasets import ClassLabel, Dataset, Features, Image, Value

    cell = {"bytes": Value("binary"), "path": Value("string")} if raw else Image()
    features = Features({"image": cell, "labels": ClassLabel(names=names)})
    ds = Dataset.from_dict(
        {"image": cells, "labels": [i % len(names) for i in range(len(cells))]}, features=features
    )
    path = tmp_path / f"saved{len(list(tmp_path.glob('saved*')))}"
    ds.save_to_disk(str(path))
    return path


def _files_under(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


def test_class_names_become_folders_inside_the_cache(tmp_path: Path) -> None:
    names = ["../../escaped", "/abs/olute", "ok"]
    saved = _saved(tmp_path, names, [{"bytes": _jpeg(i), "path": None} for i in range(6)])
    cache = tmp_path / "work" / "cache"
    before = _files_under(tmp_path) - _files_under(cache)
    listing = list_source(DataConfig(source=f"hf:{saved}"), cache)
    assert {r.label for r in listing.records} == set(names)  # the labels stay as they are
    assert all(r.file.is_relative_to(cache.resolve()) for r in listing.records)
    written = _files_under(tmp_path) - before
    assert written and all(p.is_relative_to(cache) for p in written)


@pytest.mark.parametrize("bad", ["..", "."])
def test_a_class_name_that_cannot_be_a_folder_is_refused(tmp_path: Path, bad: str) -> None:
    saved = _saved(tmp_path, [bad, "ok"], [{"bytes": _jpeg(i), "path": None} for i in range(4)])
    with pytest.raises(DataError, match="cannot be a folder name"):
        list_source(DataConfig(source=f"hf:{saved}"), tmp_path / "cache")


def test_an_image_cell_cannot_read_a_local_file(tmp_path: Path) -> None:
    secret = tmp_path / "secret.jpg"
    secret.write_bytes(_jpeg(7))
    cells: list[dict[str, object]] = [{"bytes": _jpeg(i), "path": None} for i in range(3)]
    for name in (str(secret), "../secret.jpg", "/proc/self/environ"):
        cells[-1] = {"bytes": None, "path": name}
        saved = _saved(tmp_path, ["a", "b"], cells, raw=True)
        with pytest.raises(DataError, match="not one of the dataset's own files"):
            list_source(DataConfig(source=f"hf:{saved}"), tmp_path / "cache")
    cells.append({"bytes": None, "path": "own.jpg"})  # a file of the dataset itself is read
    cells[-2] = {"bytes": _jpeg(5), "path": None}
    saved = _saved(tmp_path, ["a", "b"], cells, raw=True)
    (saved / "own.jpg").write_bytes(_jpeg(9))
    listing = list_source(DataConfig(source=f"hf:{saved}"), tmp_path / "cache")
    assert listing.records[-1].file.read_bytes() == _jpeg(9)


def _csv_data(tmp_path: Path, rows: list[str]) -> Path:
    root = tmp_path / "data"
    for cls in ("a", "b"):
        (root / cls).mkdir(parents=True)
        (root / cls / "1.jpg").write_bytes(_jpeg())
    (tmp_path / "outside.jpg").write_bytes(_jpeg(3))
    csv = root / "labels.csv"
    csv.write_text("file,label\na/1.jpg,a\nb/1.jpg,b\n" + "".join(f"{r}\n" for r in rows))
    return csv


@pytest.mark.parametrize(
    "row", ["../outside.jpg,a", "a/../../outside.jpg,a", "{outside},a", "link.jpg,a"]
)
def test_csv_rows_cannot_leave_the_data_root(tmp_path: Path, row: str) -> None:
    csv = _csv_data(tmp_path, [row.format(outside=tmp_path / "outside.jpg")])
    os.symlink(tmp_path / "outside.jpg", csv.parent / "link.jpg")
    with pytest.raises(DataError, match=r"refused|absolute path"):
        list_source(DataConfig(source=str(csv)), tmp_path / "cache")


def test_a_symlink_out_of_a_class_folder_is_refused(tmp_path: Path) -> None:
    csv = _csv_data(tmp_path, [])
    os.symlink(tmp_path / "outside.jpg", csv.parent / "a" / "2.jpg")
    with pytest.raises(DataError, match="outside the data root"):
        list_source(DataConfig(source=str(csv.parent)), tmp_path / "cache")


def test_markup_in_a_csv_row_is_printed_as_text(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    csv = _csv_data(tmp_path, ["b/[/oops].jpg,b", "b/[red]x[/red].jpg,b"])
    out = io.StringIO()
    monkeypatch.setattr(progress, "console", Console(file=out, width=200, highlight=False))
    assert main(["prepare", "--data", str(csv), "--output", str(tmp_path / "run")]) == 0
    text = out.getvalue()
    assert "b/[/oops].jpg" in text and "b/[red]x[/red].jpg" in text
