"""Fixtures of the events app's tests (helpers: tests/support/events.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from harclip.io.kafka import make_producer
from harclip.io.topics import ensure_topics
from tests.support.events import PARTITIONS
from tests.support.scoped import Unique


@pytest.fixture
async def producer(unique: Unique) -> AsyncIterator[AIOKafkaProducer]:
    await ensure_topics(unique.settings.kafka, partitions=PARTITIONS)
    p = make_producer(unique.settings.kafka)
    await p.start()
    yield p
    await p.stop()


@pytest.fixture
def datadirs(tmp_path: Path) -> Iterator[Callable[[str], Path]]:
    yield lambda name: tmp_path / name
