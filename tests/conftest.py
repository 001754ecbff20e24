"""Fixtures shared by unit and integration tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def sample_data() -> Path:
    """The shared real data (`har-sample/`, `video/`), from HARCLIP_SAMPLE_DATA.

    `.ci/run` and `make test` set it; a run without it fails here, loudly, rather than skipping.
    """
    raw = os.environ.get("HARCLIP_SAMPLE_DATA")
    if not raw or not (Path(raw) / "har-sample" / "labels.csv").is_file():
        pytest.fail("HARCLIP_SAMPLE_DATA must point at the shared data folder (har-sample/, video/)")
    return Path(raw)


@pytest.fixture(scope="session")
def sample_photos(sample_data: Path) -> list[Path]:
    """The 600 labelled HAR photos, sorted."""
    return sorted((sample_data / "har-sample").glob("*/*.jpg"))


@pytest.fixture(scope="session")
def sample_videos(sample_data: Path) -> list[Path]:
    return sorted((sample_data / "video").glob("*.mp4"))
