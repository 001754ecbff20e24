"""The processes of `bench/soak.py`: a worker and the API as children on names of their own,
their metrics, the capacity measurement, and the clean-up."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
from rich.console import Console

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harclip.config import Settings  # noqa: E402
from harclip.io import store  # noqa: E402
from harclip.io.es import make_es  # noqa: E402
from harclip.io.kafka import make_producer, send_frame  # noqa: E402
from harclip.messages import Frame, new_frame_id, now_ms  # noqa: E402

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


def child_env(s: Settings) -> dict[str, str]:
    """HARCLIP_* variables that give a worker or API process the names of `s`."""
    k, r, e = s.kafka, s.redis, s.elasticsearch
    env = {f"HARCLIP_KAFKA__TOPICS__{n.upper()}": t for n, t in k.topics.model_dump().items()}
    env |= {
        "HARCLIP_KAFKA__BOOTSTRAP": k.bootstrap, "HARCLIP_KAFKA__GROUP_ID": k.group_id,
        "HARCLIP_KAFKA__PARTITIONS": str(k.partitions), "HARCLIP_REDIS__URL": r.url,
        "HARCLIP_REDIS__KEY_PREFIX": r.key_prefix, "HARCLIP_ELASTICSEARCH__URL": e.url,
        "HARCLIP_ELASTICSEARCH__PREDICTIONS_INDEX": e.predictions_index,
        "HARCLIP_ELASTICSEARCH__EVENTS_INDEX": e.events_index,
        "HARCLIP_ELASTICSEARCH__LOGS_INDEX": e.logs_index,
    }  # fmt: skip
    return {**os.environ, **env}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Child:
    """A service process of the soak (worker or API), its log in a file."""

    name: str
    proc: asyncio.subprocess.Process
    port: int
    log: Path

    def rss_bytes(self) -> int:
        """Resident set size now (VmRSS), bytes; 0 once the process is gone."""
        try:
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        except OSError:
            pass
        return 0

    async def stop(self) -> int:
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), 60)
            except TimeoutError:
                self.proc.kill()
        return await self.proc.wait()


async def start_child(name: str, args: list[str], env: dict[str, str], port: int,
                      ready_path: str, log_dir: Path) -> Child:  # fmt: skip
    """Start `python <args>` and wait until http://127.0.0.1:port<ready_path> answers 200."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / f"soak-{name}.log"
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, *args, cwd=ROOT, env=env, stdout=out, stderr=asyncio.subprocess.STDOUT
        )
    child = Child(name, proc, port, log)
    deadline = time.monotonic() + START_TIMEOUT_S
    async with httpx.AsyncClient(timeout=5) as http:
        while True:
            if proc.returncode is not None:
                raise SystemExit(f"{name} exited ({proc.returncode}); see {log}")
            with contextlib.suppress(httpx.HTTPError):
                if (await http.get(f"http://127.0.0.1:{port}{ready_path}")).status_code == 200:
                    return child
            if time.monotonic() > deadline:
                await child.stop()
                raise SystemExit(f"{name} not ready within {START_TIMEOUT_S:g} s; see {log}")
            await asyncio.sleep(0.5)


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
    p = make_producer(s.kafka, role="bulk")
    await p.start()
    async with httpx.AsyncClient(timeout=10) as http:
        start = time.monotonic()
        for i in range(n):
            at = now_ms()
            f = Frame(new_frame_id(at), f"cap-{i % 4}", i, at, photos[i % len(photos)])
            await send_frame(p, s.kafka.topics.uploads, f)
        await p.flush()
        await p.stop()
        end = await wait_predicted(http, port, n, 600)
    return n / (end - start)


async def cleanup(base: Settings, s: Settings) -> None:
    from aiokafka.admin import AIOKafkaAdminClient

    sfx = s.kafka.group_id.removeprefix("soak-")
    es = make_es(base.elasticsearch)
    await es.options(ignore_status=404).indices.delete(index=f"*{sfx}*", allow_no_indices=True)
    await es.options(ignore_status=404).indices.delete_index_template(name=f"*{sfx}*")
    await es.close()
    r = store.make_redis(base.redis)
    keys = [k async for k in r.scan_iter(match=f"*{sfx}*", count=1000)]
    if keys:
        await r.delete(*keys)
    await r.aclose()
    admin = AIOKafkaAdminClient(bootstrap_servers=base.kafka.bootstrap)
    await admin.start()
    topics = [t for t in await admin.list_topics() if sfx in t]
    if topics:
        await admin.delete_topics(topics)
    await admin.close()


@contextlib.asynccontextmanager
async def services(s: Settings, bundle: Path, log_dir: Path) -> AsyncIterator[tuple[Child, Child]]:
    env = child_env(s)
    wport, aport = free_port(), free_port()
    worker = await start_child("worker", ["-m", "consumers", "--bundle", str(bundle),
                                          "--metrics-port", str(wport)],
                               env, wport, "/ready", log_dir)  # fmt: skip
    try:
        api = await start_child("api", ["-m", "api", "--bundle", str(bundle), "--port", str(aport)],
                                env, aport, "/ready", log_dir)  # fmt: skip
        try:
            yield worker, api
        finally:
            await api.stop()
    finally:
        await worker.stop()
