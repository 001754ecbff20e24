"""The stratified, seeded split and its manifest."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from training.config import DataConfig
from training.data.sources import list_source
from training.data.split import build_manifest, load_manifest, stratified_split
from training.errors import DataError


def _labels() -> list[str]:
    return [c for c in "abcde" for _ in range(20)] + ["f"] * 7


def test_split_is_stratified_disjoint_and_complete() -> None:
    labels = _labels()
    parts = stratified_split(labels, 0.15, 0.2, seed=0)
    all_idx = parts["train"] + parts["val"] + parts["test"]
    assert sorted(all_idx) == list(range(len(labels)))
    for name, frac in (("val", 0.15), ("test", 0.2)):
        per_class = Counter(labels[i] for i in parts[name])
        assert per_class["a"] == round(20 * frac)
        assert per_class["f"] == round(7 * frac)


def test_split_depends_on_the_seed_only() -> None:
    labels = _labels()
    assert stratified_split(labels, 0.1, 0.2, 3) == stratified_split(labels, 0.1, 0.2, 3)
    assert stratified_split(labels, 0.1, 0.2, 3) != stratified_split(labels, 0.1, 0.2, 4)


def test_a_tiny_class_keeps_a_training_image() -> None:
    parts = stratified_split(["a", "a", "b", "b", "b", "c"], 0.4, 0.6, 0)
    train = Counter(["a", "a", "b", "b", "b", "c"][i] for i in parts["train"])
    assert set(train) == {"a", "b", "c"}


def _photos(tmp_path: Path, jpeg: bytes, classes: dict[str, int]) -> Path:
    """Class folders of distinct small JPEGs."""
    for c, (name, n) in enumerate(classes.items()):
        (tmp_path / name).mkdir(parents=True)
        for i in range(n):
            (tmp_path / name / f"{i}.jpg").write_bytes(_jpeg(10 * c + i))
    return tmp_path


def _jpeg(level: int) -> bytes:
    import cv2
    import numpy as np

    ok, buf = cv2.imencode(".jpg", np.full((80, 120, 3), level, np.uint8))
    assert ok
    return bytes(buf)


@pytest.fixture(scope="module")
def jpeg() -> bytes:
    return _jpeg(128)


def test_manifest_round_trip_counts_unreadable_images(tmp_path: Path, jpeg: bytes) -> None:
    root = _photos(tmp_path / "data", jpeg, {"run": 10, "sit": 10})
    (root / "sit" / "broken.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    listing = list_source(DataConfig(source=str(root)), tmp_path / "cache")
    m = build_manifest(listing, val_fraction=0.2, test_fraction=0.2, seed=1)
    assert [s["file"] for s in m.skipped] == ["sit/broken.jpg"]
    assert m.counts() == {"train": 12, "val": 4, "test": 4}
    m.save(tmp_path / "out" / "split.json")
    again = load_manifest(tmp_path / "out" / "split.json")
    assert again.root == root.resolve() and again.splits == m.splits
    assert again.fingerprint("test") == m.fingerprint("test") != m.fingerprint("val")
    assert all(p.is_file() for p in again.paths("all"))


def test_fewer_than_two_classes_is_refused(tmp_path: Path, jpeg: bytes) -> None:
    root = _photos(tmp_path / "data", jpeg, {"run": 5})
    with pytest.raises(DataError, match="at least 2 classes"):
        list_source(DataConfig(source=str(root)), tmp_path / "cache")


def test_a_missing_class_folder_is_named(tmp_path: Path, jpeg: bytes) -> None:
    root = _photos(tmp_path / "data", jpeg, {"run": 3, "sit": 3})
    with pytest.raises(DataError, match=r"class folder .*jump is missing"):
        list_source(DataConfig(source=str(root)), tmp_path / "cache", classes=["run", "jump"])


def test_csv_source_counts_missing_files(tmp_path: Path, jpeg: bytes) -> None:
    root = _photos(tmp_path / "data", jpeg, {"run": 3, "sit": 3})
    rows = ["file,label"] + [f"{c}/{i}.jpg,{c}" for c in ("run", "sit") for i in range(3)]
    (root / "labels.csv").write_text("\n".join([*rows, "sit/gone.jpg,sit"]) + "\n")
    listing = list_source(DataConfig(source=str(root / "labels.csv")), tmp_path / "cache")
    assert len(listing.records) == 6 and listing.missing == ["sit/gone.jpg"]
    m = build_manifest(listing, val_fraction=0.0, test_fraction=0.34, seed=0)
    assert {"file": "sit/gone.jpg", "reason": "file does not exist"} in m.skipped
