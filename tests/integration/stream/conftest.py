"""Helpers for the events-app tests: scripted predictions, an app subprocess (`python -m stream`)
with a test's unique settings, its /metrics, and reading harclip.events."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from harclip.config import Settings
from harclip.io.kafka import make_producer
from harclip.io.topics import ensure_topics
from harclip.messages import Event, Prediction
from tests.integration.conftest import Unique, settings_env
from tests.integration.consumers.conftest import read_topic

ROOT = Path(__file__).resolve().parents[3]
PARTITIONS = 3
START_TIMEOUT_S = 150.0  # a loaded 2-core machine has taken > 90 s
T0 = 1_764_000_000_000  # capture time of the scripts' first frame, ms
_PORT = re.compile(r"health and metrics on http://([\d.]+):(\d+)/")


def prediction(stream_id: str, seq: int, at: int, scores: dict[str, float]) -> Prediction:
    """A Prediction whose top_k is `scores` (best first)."""
    top = sorted(scores.items(), key=lambda kv: -kv[1])
    return Prediction.model_validate({
        "frame_id": f"{stream_id}-{seq:06d}", "stream_id": stream_id, "seq": seq,
        "captured_at": at, "inferred_at": at + 50, "label": top[0][0], "score": top[0][1],
        "top_k": [{"label": lb, "score": sc} for lb, sc in top],
        "model": {"name": "tiny", "version": "1", "head_version": 1},
        "latency_ms": {"queue": 1.0, "infer": 1.0, "total": 2.0},
    })  # fmt: skip


def script(
    stream_id: str, *, phases: tuple[str, ...] = ("running", "fighting"), seconds: float = 10.0,
    fps: float = 5.0, flicker: tuple[int, ...] = (10, 23, 37, 70),
) -> list[Prediction]:  # fmt: skip
    """`seconds` of each label of `phases` in turn at `fps`, with single frames of another label
    at the `flicker` indices (the known truth: one segment per phase, switching every
    `seconds`)."""
    n = int(seconds * fps)
    out = []
    for i in range(len(phases) * n):
        label = phases[i // n]
        if i in flicker:
            label = next(p for p in (*phases, "sitting") if p != label)
        others = [p for p in (*phases, "sitting") if p != label][:2]
        at = T0 + int(i * 1000 / fps)
        scores = {label: 0.8, others[0]: 0.1, others[1]: 0.05}
        out.append(prediction(stream_id, i, at, scores))
    return out


@dataclass
class App:
    """A running `python -m stream` process."""

    proc: asyncio.subprocess.Process
    port: int
    log: list[str] = field(default_factory=list)

    async def metrics(self) -> str:
        async with httpx.AsyncClient(timeout=5.0) as c:
            return (await c.get(f"http://127.0.0.1:{self.port}/metrics")).text

    async def metric(self, name: str, labels: str = "") -> float:
        """The value of one sample (`labels` as Prometheus prints them, e.g. `reason="stale"`)."""
        want = f"{name}{{{labels}}}" if labels else name
        for line in (await self.metrics()).splitlines():
            if line.startswith(want + " "):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    async def wait_metric(self, name: str, at_least: float, labels: str = "",
                          timeout_s: float = 60.0) -> None:  # fmt: skip
        """Wait until the sample reaches `at_least` (polls /metrics; no fixed sleeps)."""
        async with asyncio.timeout(timeout_s):
            while await self.metric(name, labels) < at_least:
                assert self.proc.returncode is None, "\n".join(self.log[-30:])
                await asyncio.sleep(0.1)  # polling a condition

    def logged(self, pattern: str) -> bool:
        return any(pattern in line for line in self.log)


def app_env(settings: Settings, datadir: Path, **stream: object) -> dict[str, str]:
    """HARCLIP_* for an app subprocess with the test's unique names and `stream` overrides."""
    env = settings_env(settings)
    env |= {
        "HARCLIP_KAFKA__PARTITIONS": str(PARTITIONS),
        "HARCLIP_STREAM__APP_ID": f"harclip-stream-{settings.kafka.client_id.rsplit('-', 1)[-1]}",
        "HARCLIP_STREAM__DATADIR": str(datadir),
        "HARCLIP_STREAM__PORT": "0",
        "HARCLIP_STREAM__COMMIT_INTERVAL_S": "0.5",
        "HARCLIP_STREAM__SESSION_TIMEOUT_S": "10",
        "HARCLIP_LOG_LEVEL": "INFO",
    }
    env |= {f"HARCLIP_STREAM__{k.upper()}": str(v) for k, v in stream.items()}
    return env


async def start_app(env: dict[str, str], *args: str) -> App:
    """Start `python -m stream`; returns once it logged that it is ready (partitions assigned,
    tables recovered). Its stderr is collected in `App.log`."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "stream", *args, cwd=ROOT, env={**os.environ, **env},
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stderr is not None
    app = App(proc, 0)
    async with asyncio.timeout(START_TIMEOUT_S):
        while True:
            line = (await proc.stderr.readline()).decode()
            if not line:
                raise AssertionError(f"app exited with {await proc.wait()}:\n" + "".join(app.log))
            app.log.append(line)
            if m := _PORT.search(line):
                app.port = int(m.group(2))
            if "events app ready" in line:
                break
    app._drain = asyncio.create_task(_drain(app))  # type: ignore[attr-defined]
    return app


async def _drain(app: App) -> None:
    assert app.proc.stderr is not None
    while line := await app.proc.stderr.readline():
        app.log.append(line.decode())


async def stop_app(app: App, *, kill: bool = False) -> int:
    """SIGTERM (or SIGKILL) and wait; a process that does not stop in 60 s is killed."""
    if app.proc.returncode is None:
        app.proc.kill() if kill else app.proc.terminate()
    try:
        return await asyncio.wait_for(app.proc.wait(), 60)
    except TimeoutError:
        app.proc.kill()
        await app.proc.wait()
        raise


@pytest.fixture
async def producer(unique: Unique) -> AsyncIterator[AIOKafkaProducer]:
    await ensure_topics(unique.settings.kafka, partitions=PARTITIONS)
    p = make_producer(unique.settings.kafka)
    await p.start()
    yield p
    await p.stop()


async def send(p: AIOKafkaProducer, settings: Settings, preds: list[Prediction]) -> None:
    """Put predictions on harclip.predictions (key = stream_id) and wait for the acks."""
    topic = settings.kafka.topics.predictions
    futures = [await p.send(topic, x.to_json(), key=x.stream_id.encode()) for x in preds]
    await asyncio.gather(*futures)


async def events(
    settings: Settings, until: Callable[[list[Event]], bool] | None = None, timeout_s: float = 60.0
) -> list[Event]:
    """Events on harclip.events from the beginning: all so far, or until `until(events)`."""
    parse: Callable[[list], list[Event]] = lambda rs: [Event.from_json(r.value) for r in rs]  # noqa: E731
    records = await read_topic(
        settings, settings.kafka.topics.events,
        until=None if until is None else (lambda rs: until(parse(rs))), timeout_s=timeout_s,
    )  # fmt: skip
    return parse(records)


def kinds(evs: list[Event], stream_id: str | None = None) -> list[tuple[str, str | None]]:
    return [(e.type, e.label or e.rule) for e in evs if stream_id in (None, e.stream_id)]


@pytest.fixture
def datadirs(tmp_path: Path) -> Iterator[Callable[[str], Path]]:
    yield lambda name: tmp_path / name
