"""Helpers of the events app's tests: scripted predictions, an app process (`python -m stream`)
on a test's unique settings with its /metrics, and reading harclip.events."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
from aiokafka import AIOKafkaProducer

from harclip.config import Settings
from harclip.messages import Event, Prediction
from harclip.services.child import Child
from tests.support.kafka import read_topic
from tests.support.processes import env_of, start

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
    """A running `python -m stream` process and the port of its health server."""

    child: Child
    port: int

    @property
    def returncode(self) -> int | None:
        return self.child.returncode

    @property
    def log(self) -> list[str]:
        return self.child.lines

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
                assert self.returncode is None, self.child.tail()
                await asyncio.sleep(0.1)  # polling a condition

    def logged(self, pattern: str) -> bool:
        return self.child.logged(pattern)


def app_settings(settings: Settings, datadir: Path) -> Settings:
    """`settings` (a test's unique names) for an app process: its own app id (consumer group)
    and data folder, any free port, quick commits and a short session timeout."""
    stream = settings.stream.model_copy(
        update={
            "app_id": f"harclip-stream-{settings.kafka.client_id.rsplit('-', 1)[-1]}",
            "datadir": datadir,
            "port": 0,
            "commit_interval_s": 0.5,
            "session_timeout_s": 10.0,
        }
    )
    return settings.model_copy(update={
        "kafka": settings.kafka.model_copy(update={"partitions": PARTITIONS}),
        "stream": stream, "log_level": "INFO"})  # fmt: skip


def app_env(settings: Settings, datadir: Path, **stream: object) -> dict[str, str]:
    """The environment of an app process on `app_settings`, with `stream` fields (as their
    HARCLIP_STREAM__* text) on top. The evidence step is off unless `evidence=True` (its
    republished copies would add to the events the tests count)."""
    stream = {"evidence": False, **stream}
    return env_of(app_settings(settings, datadir),
                  {f"HARCLIP_STREAM__{k.upper()}": str(v) for k, v in stream.items()})  # fmt: skip


async def start_app(env: dict[str, str], *args: str) -> App:
    """Start `python -m stream`; returns once it logged that it is ready (partitions assigned,
    tables recovered)."""
    child = start("stream", *args, env=env)
    try:
        await child.await_line("events app ready", START_TIMEOUT_S)
    except BaseException:
        child.stop()
        raise
    port = next(int(m.group(2)) for line in child.lines if (m := _PORT.search(line)))
    return App(child, port)


async def stop_app(app: App, *, kill: bool = False) -> int:
    """SIGTERM (or SIGKILL) and wait; a process that does not stop in 60 s is killed."""
    return await app.child.astop(60.0, kill=kill)


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
