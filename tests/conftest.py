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
        pytest.fail("HARCLIP_SAMPLE_DATA must point at the shared data folder (har-sample/)")
    return Path(raw)


@pytest.fixture(scope="session")
def sample_photos(sample_data: Path) -> list[Path]:
    """The 600 labelled HAR photos, sorted."""
    return sorted((sample_data / "har-sample").glob("*/*.jpg"))


@pytest.fixture(scope="session")
def sample_videos(sample_data: Path) -> list[Path]:
    return sorted((sample_data / "video").glob("*.mp4"))


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random tiny CLIP in the hub's folder format (`harclip init-model DIR --arch tiny`)."""
    from harclip.clip.init import init_model

    return init_model(tmp_path_factory.mktemp("tiny-model") / "clip", "tiny")


@pytest.fixture(scope="session")
def tiny_bundle(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny CLIP exported to a bundle with the onnx, onnx-int8, torchscript and torch engines
    and the default 15-class zero-shot head. Treat it as read-only (copy it to change it)."""
    from harclip.clip.export import ExportOptions, export_bundle
    from harclip.clip.load import load_clip

    out = tmp_path_factory.mktemp("tiny-bundle") / "bundle"
    options = ExportOptions(formats=("onnx", "int8", "torchscript", "torch"))
    return export_bundle(load_clip(tiny_model_dir), out, options).path
