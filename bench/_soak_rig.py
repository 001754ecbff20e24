"""The processes of `bench.soak`: a worker and the API as children on names of their own,
their metrics, the capacity measurement, and the clean-up."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
from rich.console import Console

from bench import harness
from bench._pipeline_run import send_uploads
from harclip.config import Settings
from harclip.services.child import Child

console = Console(stderr=True)
PARTITIONS = 2
START_TIMEOUT_S = 300.0


def scoped(base: Settings, bundle: Path) -> Settings:
    """`base` with names of this run only (soak-<suffix>) and the bundle."""
    sfx = uuid.uuid4().hex[:8]
    k, r, e = base.kafka, base.redis, base.elasticsearch
    return base.model_copy(update={
        "kafka": k.model_copy(update={"topics": k.topics.with_prefix(f"soak-{sfx}."),
                                      "group_id": f"soak-{sfx}", "partitions": PARTITIONS}),
        "redis": r.model_copy(update={"key_prefix": f"soak-{sfx}"}),
        "elasticsearch": e.model_copy(update={"predictions_index": f"soak-pred-{sfx}",
                                              "events_index": f"soak-events-{sfx}",
                                              "logs_index": f"soak-logs-{sfx}"}),
        "model": base.model.model_copy(update={"bundle": bundle}),
    })  # fmt: skip


@dataclass
class Running:
    """A service process of the soak (worker or API) and the port of its HTTP server."""

    child: Child
    port: int

    def rss_bytes(self) -> int:
        """Resident set size now (VmRSS), bytes; 0 once the process is gone."""
        try:
            for line in Path(f"/proc/{self.child.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        except OSError:
            pass
        return 0

    async def stop(self) -> int:
        return await self.child.astop(60.0)


async def worker_metrics(http: httpx.AsyncClient, port: int) -> dict[str, float]:
    """The worker's counters and lag, summed over labels."""
    from prometheus_client.parser import text_string_to_metric_families

    text = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
    out: dict[str, float] = {}
    for fam in text_string_to_metric_families(text):
        for sample in fam.samples:
            if sample.name in ("harclip_frames_predicted_total", "harclip_frames_dropped_total",
                               "harclip_frames_failed_total", "harclip_consumer_lag"):  # fmt: skip
                out[sample.name] = out.get(sample.name, 0.0) + sample.value
    return out


async def wait_predicted(http: httpx.AsyncClient, port: int, n: float, timeout_s: float) -> float:
    """Until predicted + dropped + failed >= n; returns when (monotonic)."""
    deadline = time.monotonic() + timeout_s
    while True:
        m = await worker_metrics(http, port)
        done = sum(m.get(k, 0.0) for k in ("harclip_frames_predicted_total",
                                           "harclip_frames_dropped_total",
                                           "harclip_frames_failed_total"))  # fmt: skip
        if done >= n:
            return time.monotonic()
        if time.monotonic() > deadline:
            raise SystemExit(f"the worker handled {done:.0f} of {n:.0f} frames in {timeout_s:g} s")
        await asyncio.sleep(0.2)


async def capacity(s: Settings, photos: list[bytes], n: int, port: int) -> float:
    """Frames/s of the worker: n uploads, from the first send until all are acknowledged."""
    async with httpx.AsyncClient(timeout=10) as http:
        start = time.monotonic()
        await send_uploads(s, photos, n, streams="cap")
        end = await wait_predicted(http, port, n, 600)
    return n / (end - start)


async def cleanup(base: Settings, s: Settings) -> None:
    """Delete what the soak made under its names (soak-<suffix>)."""
    await harness.cleanup(base, s.kafka.group_id.removeprefix("soak-"))


@contextlib.asynccontextmanager
async def services(s: Settings, bundle: Path, log_dir: Path
                   ) -> AsyncIterator[tuple[Running, Running]]:  # fmt: skip
    """A worker and the API on `s`, each once its /ready answers (logs in `log_dir`)."""
    w, wport = await asyncio.to_thread(harness.start_worker, s, bundle,
                                       log=log_dir / "soak-worker.log",
                                       timeout_s=START_TIMEOUT_S)  # fmt: skip
    worker = Running(w, wport)
    try:
        a, url = await asyncio.to_thread(harness.start_api, s, bundle,
                                         log=log_dir / "soak-api.log",
                                         timeout_s=START_TIMEOUT_S)  # fmt: skip
        api = Running(a, int(url.rsplit(":", 1)[1]))
        try:
            yield worker, api
        finally:
            await api.stop()
    finally:
        await worker.stop()
