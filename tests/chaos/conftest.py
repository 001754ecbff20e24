"""Fixtures of the chaos tests: private Kafka, Elasticsearch and Redis, names unique to a test,
and the rig under steady load (the rig itself: tests/support/chaos/).

These tests run only with `HARCLIP_CHAOS=1` (`make chaos`); a plain `pytest tests` skips the
folder. Each test ends with `Rig.check`: every frame sent has exactly one Elasticsearch document,
Redis `latest` is each stream's last frame, every subscriber saw every frame of its stream, and the
DLQ holds the poison records the load mixed in and nothing else. The table of faults is printed at
the end of the session (and written to state/chaos/table.json).
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

from harclip.config import Settings, load_settings
from harclip.services import manager
from tests.support.chaos.rig import Rig, photos
from tests.support.chaos.services import ROWS, STATE, Services, private_settings
from tests.support.scoped import Unique, cleanup, new_suffix, scoped


def pytest_ignore_collect(collection_path: Path) -> bool | None:
    """Collect the chaos tests only under `make chaos` (HARCLIP_CHAOS=1)."""
    if os.environ.get("HARCLIP_CHAOS") != "1" and collection_path.suffix == ".py":
        return collection_path.name.startswith("test_")
    return None


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not ROWS:
        return
    cols = ["fault", "outage s", "recovery s", "sent", "lost", "dup", "latest", "gaps",
            "dlq!poison", "poison miss"]  # fmt: skip
    lines = [" | ".join(cols), " | ".join("---" for _ in cols)]
    for r in ROWS:
        lines.append(" | ".join(str(x) for x in (
            r.fault, f"{r.outage_s:.1f}", f"{r.recovery_s:.1f}", r.sent, r.lost, r.duplicated,
            r.latest_wrong, r.gaps, r.dlq_not_poison, r.poison_missing)))  # fmt: skip
    terminalreporter.write_sep("=", "chaos: faults, recovery, frames lost (goal 0)")
    for line in lines:
        terminalreporter.write_line(line)
    STATE.mkdir(parents=True, exist_ok=True)
    (STATE / "table.json").write_text(json.dumps([asdict(r) for r in ROWS], indent=1))


@pytest.fixture(scope="session")
def services() -> Iterator[Services]:
    """Kafka, Elasticsearch and Redis of the chaos tests alone, started and stopped here."""
    s = private_settings(load_settings())
    built = manager.build(s)
    manager.up(built)
    try:
        yield Services(s, {svc.name: svc for svc in built})
    finally:
        manager.down(built)


@pytest.fixture(scope="session")
def settings(services: Services) -> Settings:
    """The private services' settings (`unique` builds on them)."""
    return services.settings


@pytest.fixture
def unique(settings: Settings) -> Iterator[Unique]:
    """A test's own names on the private services (test_poison); deleted afterwards."""
    suffix = new_suffix()
    yield Unique(suffix=suffix, settings=scoped(settings, suffix))
    cleanup(settings, suffix)


@pytest.fixture
async def rig(services: Services, tiny_bundle: Path, sample_photos: list[Path]
              ) -> AsyncIterator[Rig]:  # fmt: skip
    """The running rig under load; closed (and its names deleted) after the test."""
    for name in ("kafka", "elasticsearch", "redis"):  # a test that failed mid-fault
        services.up(name)
    rig = Rig(services, tiny_bundle, photos(sample_photos, services.settings))
    try:
        await rig.start()
        await rig.until_sent(40)  # steady load before the fault
        yield rig
    finally:
        await rig.close()
        await asyncio.to_thread(cleanup, rig.settings, rig.suffix)
