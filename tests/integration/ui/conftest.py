"""The UI against a real system: the API and an inference worker as child processes (as
`python -m api` and `python -m consumers` run in production) over the real Kafka, Redis and
Elasticsearch with names unique to this session, and sample photos ingested and predicted.

Started once for every UI test (AppTest pages and the browser), since starting a worker and the
API takes most of a UI test's time; each test uses stream ids of its own (helpers:
tests/support/ui.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from harclip.config import Settings
from harclip.services.child import Child
from tests.support.api import child_settings
from tests.support.processes import env_of, free_port, start
from tests.support.scoped import cleanup, new_suffix, scoped
from tests.support.ui import System, act


def _system_settings(settings: Settings, suffix: str, datadir: Path) -> Settings:
    s = child_settings(scoped(settings, suffix))
    return s.model_copy(update={
        # The engine is not the subject here: the plain ONNX engine skips per-start validation.
        "model": s.model.model_copy(update={"engine": "onnx"}),
        # the seeded streams keep their latest frames for the session (the default TTL, 60 s,
        # is shorter than the browser tests that run before the pages' tests)
        "redis": s.redis.model_copy(update={"frame_ttl_s": 3600}),
        "stream": s.stream.model_copy(update={
            "app_id": f"harclip-stream-{suffix}", "datadir": datadir, "store": "memory",
            "port": free_port(), "commit_interval_s": 0.5, "session_timeout_s": 10.0,
            # the played stream stays up (its action current) for the whole session
            "idle_timeout_s": 3600.0}),
        "metrics": s.metrics.model_copy(update={"port": free_port()}),
        "api": s.api.model_copy(update={"port": free_port()}),
    })  # fmt: skip


@pytest.fixture(scope="session")
def ui_system(
    settings: Settings,
    tiny_bundle: Path,
    sample_photos: list[Path],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[System]:
    suffix = new_suffix()
    s = _system_settings(settings, suffix, tmp_path_factory.mktemp("ui-stream"))
    env = env_of(s)
    bundle = str(tiny_bundle)
    children: list[Child] = []
    try:
        children.append(start("consumers", "--bundle", bundle, env=env))
        children.append(start("api", "--bundle", bundle, "--port", str(s.api.port), env=env))
        children.append(start("stream", env=env))
        system = System(
            api_url=f"http://127.0.0.1:{s.api.port}",
            worker_metrics_url=f"http://127.0.0.1:{s.metrics.port}/metrics",
            events_metrics_url=f"http://127.0.0.1:{s.stream.port}/metrics",
            settings=s,
            photos=sample_photos[::60],  # one of each class
        )
        worker, api, events_app = children
        api.wait_ready(f"{system.api_url}/ready")
        worker.wait_ready(system.worker_metrics_url.removesuffix("/metrics") + "/ready")
        events_app.wait_ready(system.events_metrics_url.removesuffix("/metrics") + "/ready")
        act(system, system.ingest("ui-seed", system.photos))
        yield system
    finally:
        for child in children:
            child.stop()
        cleanup(settings, suffix)
