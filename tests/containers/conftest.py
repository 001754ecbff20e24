"""Fixtures of the container smoke test (`make containers-smoke`, docs/deploy.md "Containers"):
the images `make images` built, run with Podman against the services already running on this
machine, under names unique to the run.

These tests run only with `HARCLIP_CONTAINERS=1` (the make target sets it, after building the
images); a plain `pytest tests` skips the folder, as it does tests/chaos.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Iterator
from pathlib import Path

import pytest

from harclip.config import Settings, load_settings
from harclip.services import manager
from tests.support.scoped import Unique, cleanup, new_suffix, scoped


def pytest_ignore_collect(collection_path: Path) -> bool | None:
    """Collect these tests only under `make containers-smoke` (HARCLIP_CONTAINERS=1)."""
    if os.environ.get("HARCLIP_CONTAINERS") != "1" and collection_path.suffix == ".py":
        return collection_path.name.startswith("test_")
    return None


@pytest.fixture(scope="session")
def podman() -> list[str]:
    """The Podman command line (PODMAN, default `podman`; the Makefile exports CONTAINERS_CONF)."""
    return shlex.split(os.environ.get("PODMAN", "podman"))


@pytest.fixture(scope="session")
def image() -> dict[str, str]:
    """Role -> image reference, as `make images` tagged them."""
    repo = os.environ.get("HARCLIP_IMAGE_REPO", "ghcr.io/harclip/harclip")
    tag = os.environ.get("HARCLIP_IMAGE_TAG", "dev")
    return {role: f"{repo}-{role}:{tag}" for role in ("worker", "api", "stream", "ui")}


@pytest.fixture(scope="session")
def settings() -> Settings:
    s = load_settings()
    missing = manager.not_answering(s)
    if missing:
        pytest.fail(
            f"not answering: {', '.join(missing)}; start the services first (make services-up)",
            pytrace=False,
        )
    return s


@pytest.fixture
def unique(settings: Settings) -> Iterator[Unique]:
    """Topics, consumer group, indices, Redis keys and bucket of this test alone; deleted after."""
    suffix = new_suffix()
    yield Unique(suffix=suffix, settings=scoped(settings, suffix))
    cleanup(settings, suffix)
