"""Fixtures for tests against the real Kafka, Redis and Elasticsearch.

`make test` starts them (`harclip services up`); every test here is marked `integration`.
Each test gets its own topic prefix, consumer group, index names and Redis key prefix through
`unique`, so tests never see each other's data and can run in any order.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from harclip.config import Settings, load_settings
from harclip.services import manager

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


@dataclass(frozen=True)
class Unique:
    """Names that belong to one test; `settings` already uses them everywhere."""

    suffix: str  # 10 lowercase hex digits
    settings: Settings

    def name(self, base: str) -> str:
        """`base` made unique to this test, valid as a topic, index, group or key name."""
        return f"{base}-{self.suffix}"


@pytest.fixture
def unique(settings: Settings) -> Iterator[Unique]:
    """Settings whose topics, consumer group, indices and Redis keys are unique to this test.

    Afterwards the test's topics, indices and keys are deleted.
    """
    suffix = uuid.uuid4().hex[:10]
    k, r, e = settings.kafka, settings.redis, settings.elasticsearch
    scoped = settings.model_copy(
        update={
            "kafka": k.model_copy(
                update={
                    "topics": k.topics.with_prefix(f"test-{suffix}."),
                    "group_id": f"{k.group_id}-{suffix}",
                    "client_id": f"{k.client_id}-{suffix}",
                }
            ),
            "redis": r.model_copy(update={"key_prefix": f"{r.key_prefix}-{suffix}"}),
            "elasticsearch": e.model_copy(
                update={
                    "predictions_index": f"{e.predictions_index}-{suffix}",
                    "events_index": f"{e.events_index}-{suffix}",
                    "logs_index": f"{e.logs_index}-{suffix}",
                }
            ),
        }
    )
    yield Unique(suffix=suffix, settings=scoped)
    _cleanup(settings, suffix)


def _cleanup(settings: Settings, suffix: str) -> None:
    """Delete what a test made under its suffix: indices, templates, Redis keys, topics."""
    import redis
    from elasticsearch import Elasticsearch

    with Elasticsearch(settings.elasticsearch.url) as es:
        es.indices.delete(index=f"*{suffix}*", ignore_unavailable=True, allow_no_indices=True)
        es.options(ignore_status=404).indices.delete_index_template(name=f"*{suffix}*")
    with redis.Redis.from_url(settings.redis.url) as client:
        keys = list(client.scan_iter(match=f"*{suffix}*", count=1000))
        if keys:
            client.delete(*keys)
    with ThreadPoolExecutor(max_workers=1) as pool:  # own loop: callers may be inside one
        pool.submit(asyncio.run, _delete_topics(settings.kafka.bootstrap, suffix)).result()


async def _delete_topics(bootstrap: str, suffix: str) -> None:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        topics = [t for t in await admin.list_topics() if suffix in t]
        if topics:
            await admin.delete_topics(topics)
    finally:
        await admin.close()


class LogWatch:
    """The log lines of a child process (its stderr, merged stdout), read by a thread, so a test
    can wait for a line that says something happened instead of polling for it."""

    def __init__(self, cmd: list[str], **popen: Any) -> None:
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **popen
        )
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            sys.stderr.write(line)  # still visible in the test's captured output
            with self._changed:
                self.lines.append(line)
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def _wait(self, pattern: str, timeout_s: float) -> str:
        found = re.compile(pattern)
        with self._changed:
            seen = 0
            while True:
                for line in self.lines[seen:]:
                    if found.search(line):
                        return line
                seen = len(self.lines)
                if self.proc.poll() is not None and not self._reader.is_alive():
                    raise AssertionError(f"exited ({self.proc.returncode}) before: {pattern}")
                if not self._changed.wait(timeout_s):
                    raise AssertionError(f"no log line {pattern!r} within {timeout_s:g} s")

    async def wait(self, pattern: str, timeout_s: float = 120.0) -> str:
        """The first line (since the start) that matches the regex `pattern`."""
        return await asyncio.to_thread(self._wait, pattern, timeout_s)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._reader.join(timeout=10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def settings_env(s: Settings) -> dict[str, str]:
    """HARCLIP_* variables that give a child process (worker, API, events app) the same names as
    `s` (topics, group, Redis prefix, Elasticsearch aliases) and its health server any port."""
    k, r, e = s.kafka, s.redis, s.elasticsearch
    env = {f"HARCLIP_KAFKA__TOPICS__{name.upper()}": topic
           for name, topic in k.topics.model_dump().items()}  # fmt: skip
    env |= {
        "HARCLIP_KAFKA__BOOTSTRAP": k.bootstrap,
        "HARCLIP_KAFKA__GROUP_ID": k.group_id,
        "HARCLIP_KAFKA__CLIENT_ID": k.client_id,
        "HARCLIP_KAFKA__PARTITIONS": str(k.partitions),
        "HARCLIP_REDIS__URL": r.url,
        "HARCLIP_REDIS__KEY_PREFIX": r.key_prefix,
        "HARCLIP_ELASTICSEARCH__URL": e.url,
        "HARCLIP_ELASTICSEARCH__PREDICTIONS_INDEX": e.predictions_index,
        "HARCLIP_ELASTICSEARCH__EVENTS_INDEX": e.events_index,
        "HARCLIP_ELASTICSEARCH__LOGS_INDEX": e.logs_index,
        "HARCLIP_METRICS__PORT": "0",
    }
    return env
