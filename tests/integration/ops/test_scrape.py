"""The monitoring assets against the running services: every metric the Prometheus rules and the
Grafana dashboards read is in a live scrape of a worker, the API or the events app; and a
worker started with HARCLIP_LOG_TO_ELASTICSEARCH=true has its log lines searchable in
`harclip-logs`."""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from elasticsearch import AsyncElasticsearch
from prometheus_client.parser import text_string_to_metric_families

from infra.validate import monitoring
from tests.integration.conftest import LogWatch, Unique, settings_env

ROOT = Path(__file__).resolve().parents[3]
_START_S = 180.0  # longest wait for a process to come up, seconds
_PORT = re.compile(r"health and metrics on http://[\d.]+:(\d+)/")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def services(
    unique: Unique, tiny_bundle: Path, tmp_path: Path
) -> Iterator[tuple[dict[str, LogWatch], int]]:
    """A worker (shipping its logs to Elasticsearch), the API and the events app, on the test's
    unique names."""
    env = {
        **os.environ,
        **settings_env(unique.settings),
        "HARCLIP_AUTH__KEYS": json.dumps({"ops-test-admin-key": "admin"}),
        "HARCLIP_STREAM__PORT": "0",
        "HARCLIP_STREAM__DATADIR": str(tmp_path / "stream"),
        "HARCLIP_STREAM__STORE": "memory",
        "HARCLIP_STREAM__APP_ID": unique.name("harclip-stream"),
    }
    api_port = _free_port()
    started: dict[str, LogWatch] = {}
    try:
        started["worker"] = LogWatch(
            [sys.executable, "-m", "consumers", "--bundle", str(tiny_bundle)],
            cwd=ROOT, env=env | {"HARCLIP_LOG_TO_ELASTICSEARCH": "true"},
        )  # fmt: skip
        started["api"] = LogWatch(
            [sys.executable, "-m", "api", "--bundle", str(tiny_bundle), "--port", str(api_port)],
            cwd=ROOT, env=env,
        )  # fmt: skip
        started["stream"] = LogWatch([sys.executable, "-m", "stream"], cwd=ROOT, env=env)
        yield started, api_port
    finally:
        for watch in started.values():
            watch.stop()


def _families(url: str) -> set[str]:
    text = httpx.get(url, timeout=10.0).raise_for_status().text
    return {monitoring.base_name(f.name) for f in text_string_to_metric_families(text)}


def _used_metrics() -> set[str]:
    """Every metric name the rules and the dashboards read, less recorded and external ones."""
    rules = yaml.safe_load((ROOT / monitoring.RULES).read_text())["groups"]
    names = {n for g in rules for r in g["rules"] for n in monitoring.metric_names(r["expr"])}
    for f in (ROOT / monitoring.DASHBOARDS).glob("*.json"):
        for _, expr in monitoring.panel_queries(json.loads(f.read_text())):
            names |= monitoring.metric_names(expr)
    return {monitoring.base_name(n) for n in names if not n.startswith(monitoring.EXTERNAL)}


async def test_rules_and_dashboards_read_only_scraped_metrics_and_logs_reach_elasticsearch(
    services: tuple[dict[str, LogWatch], int], unique: Unique
) -> None:
    watches, api_port = services
    worker_port = _PORT.search(await watches["worker"].wait(_PORT.pattern, _START_S))
    stream_port = _PORT.search(await watches["stream"].wait(_PORT.pattern, _START_S))
    await watches["api"].wait("Uvicorn running on", _START_S)  # bound: startup comes first
    assert worker_port and stream_port
    scraped = {
        "worker": _families(f"http://127.0.0.1:{worker_port.group(1)}/metrics"),
        "stream": _families(f"http://127.0.0.1:{stream_port.group(1)}/metrics"),
        "api": _families(f"http://127.0.0.1:{api_port}/metrics"),
    }
    used = _used_metrics()
    assert len(used) > 30  # the check reads what it should
    missing = used - set().union(*scraped.values())
    assert not missing, f"read by rules/dashboards, exported by no service: {sorted(missing)}"
    assert {"harclip_predicted_labels", "harclip_prediction_score"} <= scraped["worker"]

    # The worker's log lines, bulk-written by its logship handler (every second): polled.
    s = unique.settings.elasticsearch
    query = {"bool": {"filter": [
        {"term": {"service.name": "harclip-worker"}},
        {"match_phrase": {"message": "health and metrics on"}},
    ]}}  # fmt: skip
    async with AsyncElasticsearch(s.url) as es:
        async with asyncio.timeout(60):
            while not await es.indices.exists_alias(name=s.logs_index) or not (
                hits := (await es.search(index=s.logs_index, query=query))["hits"]["hits"]
            ):
                await asyncio.sleep(0.2)  # polling a condition
                await es.indices.refresh(index=f"{s.logs_index}-*", allow_no_indices=True)
    assert len(hits) == 1
    assert hits[0]["_index"].startswith(f"{s.logs_index}-")

    # and it stops cleanly with the handler flushing at exit (no deadlock on the handler's lock)
    watches["worker"].stop()
    assert watches["worker"].proc.returncode == 0
