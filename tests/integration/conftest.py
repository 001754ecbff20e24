"""Fixtures for tests against the real Kafka, Redis and Elasticsearch.

`make test` starts them (`harclip services up`); every test here is marked `integration`.
Each test gets its own topic prefix, consumer group, index names and Redis key prefix through
`unique`, so tests never see each other's data and can run in any order (helpers:
tests/support/).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from harclip.config import Settings, load_settings
from harclip.io.objects import ObjectStore
from harclip.services import manager
from tests.support.scoped import Unique, cleanup, new_suffix, scoped

_HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _HERE in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def settings() -> Settings:
    """The settings the services were started with (environment / .env, defaults)."""
    return load_settings()


@pytest.fixture(scope="session", autouse=True)
def _services_answer(settings: Settings) -> None:
    """Fail (never skip) the whole session when a service does not answer."""
    missing = manager.not_answering(settings)
    if missing:
        pytest.fail(
            f"not answering: {', '.join(missing)} (kafka {settings.kafka.bootstrap}, "
            f"elasticsearch {settings.elasticsearch.url}, redis {settings.redis.url}, "
            f"objects {settings.objects.url}); "
            "start them with `make services-up` (or run `make test`)",
            pytrace=False,
        )


@pytest.fixture
def unique(settings: Settings) -> Iterator[Unique]:
    """Settings whose topics, consumer group, indices and Redis keys are unique to this test.

    Afterwards the test's topics, indices and keys are deleted.
    """
    suffix = new_suffix()
    yield Unique(suffix=suffix, settings=scoped(settings, suffix))
    cleanup(settings, suffix)


@pytest.fixture
async def store(settings: Settings) -> AsyncIterator[ObjectStore]:
    """A started client of the object store (the shared bucket; keys under `prefix`)."""
    s = ObjectStore(settings.objects)
    await s.start()
    yield s
    await s.close()


@pytest.fixture
async def prefix(store: ObjectStore, unique: Unique) -> AsyncIterator[str]:
    """A key prefix of this test's own; its objects are deleted afterwards."""
    p = f"test-{unique.suffix}/"
    yield p
    await store.delete([o.key for o in await store.list(p)])
