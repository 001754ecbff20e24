"""A Hugging Face dataset through the real `datasets` code (a dataset saved with
`save_to_disk`; the hub id path is the same `datasets` call and is not reached in tests): its
images become files, and an unlabelled split (all labels one class, like the HAR test split)
is refused with a message saying what to do."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from training.config import DataConfig
from training.data.sources import list_source
from training.data.split import build_manifest
from training.errors import DataError


@pytest.fixture(scope="module")
def har_like(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A DatasetDict like Bingsu/Human_Action_Recognition: image + ClassLabel `labels`;
    train labelled (3 classes × 4), test all 0."""
    from datasets import ClassLabel, Dataset, DatasetDict, Features, Image

    def jpeg(i: int) -> bytes:
        ok, buf = cv2.imencode(".jpg", np.full((40, 60, 3), 20 * i, np.uint8))
        assert ok
        return bytes(buf)

    features = Features(
        {"image": Image(), "labels": ClassLabel(names=["calling", "eating", "sitting"])}
    )
    train = Dataset.from_dict(
        {"image": [{"bytes": jpeg(i), "path": None} for i in range(12)],
         "labels": [i % 3 for i in range(12)]}, features=features,
    )  # fmt: skip
    test = Dataset.from_dict(
        {"image": [{"bytes": jpeg(i), "path": None} for i in range(4)], "labels": [0] * 4},
        features=features,
    )
    path = tmp_path_factory.mktemp("hf") / "har"
    DatasetDict({"train": train, "test": test}).save_to_disk(str(path))
    return path


def test_labelled_split_becomes_files_and_a_manifest(har_like: Path, tmp_path: Path) -> None:
    cfg = DataConfig(source=f"hf:{har_like}", hf_split="train")
    listing = list_source(cfg, tmp_path / "cache")
    assert len(listing.records) == 12 and all(r.file.is_file() for r in listing.records)
    assert {r.label for r in listing.records} == {"calling", "eating", "sitting"}
    m = build_manifest(listing, val_fraction=0.0, test_fraction=0.25, seed=0)
    assert m.classes == ("calling", "eating", "sitting") and m.counts()["test"] == 3


def test_the_unlabelled_test_split_is_refused(har_like: Path, tmp_path: Path) -> None:
    cfg = DataConfig(source=f"hf:{har_like}", hf_split="test")
    with pytest.raises(DataError, match=r"only class 'calling'.*hf_split=train") as e:
        list_source(cfg, tmp_path / "cache")
    assert "\n" not in str(e.value)


def test_missing_split_and_column(har_like: Path, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no split 'validation'"):
        list_source(DataConfig(source=f"hf:{har_like}", hf_split="validation"), tmp_path)
    with pytest.raises(DataError, match="no column 'label'"):
        list_source(DataConfig(source=f"hf:{har_like}", hf_label_column="label"), tmp_path)
