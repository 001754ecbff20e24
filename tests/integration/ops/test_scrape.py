"""The monitoring assets against the running services: every metric the Prometheus rules and the
Grafana dashboards read is in a live scrape of a worker, the API or the events app; and a
worker started with HARCLIP_LOG_TO_ELASTICSEARCH=true has its log lines searchable in
`harclip-logs`."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from elasticsearch import AsyncElasticsearch
from prometheus_client.parser import text_string_to_metric_families

from harclip.config import AuthSettings
from harclip.services.child import Child
from infra.validate import monitoring
from tests.support.es import hits_until
from tests.support.processes import ROOT, env_of, free_port, start
from tests.support.scoped import Unique

_START_S = 180.0  # longest wait for a process to come up, seconds
_PORT = re.compile(r"health and metrics on http://[\d.]+:(\d+)/")


@pytest.fixture
def services(
    unique: Unique, tiny_bundle: Path, tmp_path: Path
) -> Iterator[tuple[dict[str, Child], int]]:
    """A worker (shipping its logs to Elasticsearch), the API and the events app, on the test's
    unique names."""
    settings = unique.settings.model_copy(update={
        "auth": AuthSettings(keys={"ops-test-admin-key": "admin"}),
        "stream": unique.settings.stream.model_copy(update={
            "port": 0, "datadir": tmp_path / "stream", "store": "memory",
            "app_id": unique.name("harclip-stream")}),
    })  # fmt: skip
    env = env_of(settings)
    api_port = free_port()
    started: dict[str, Child] = {}
    try:
        bundle = str(tiny_bundle)
        started["worker"] = start("consumers", "--bundle", bundle,
                                  env=env | {"HARCLIP_LOG_TO_ELASTICSEARCH": "true"})  # fmt: skip
        started["api"] = start("api", "--bundle", bundle, "--port", str(api_port), env=env)
        started["stream"] = start("stream", env=env)
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
    services: tuple[dict[str, Child], int], unique: Unique
) -> None:
    watches, api_port = services
    worker_port = _PORT.search(await watches["worker"].await_line(_PORT.pattern, _START_S))
    stream_port = _PORT.search(await watches["stream"].await_line(_PORT.pattern, _START_S))
    await watches["api"].await_line("Uvicorn running on", _START_S)  # bound: startup comes first
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
        hits = await hits_until(es, s.logs_index, bool, query=query)
    assert len(hits) == 1
    assert hits[0]["_index"].startswith(f"{s.logs_index}-")

    # and it stops cleanly with the handler flushing at exit (no deadlock on the handler's lock)
    assert watches["worker"].stop() == 0
