"""Helpers of the inference worker's tests: an in-process worker, settings for a test's worker
(tiny bundle, unique names), its counters and health, a producer, and a private redis-server."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from consumers.cli import run
from consumers.worker import Worker
from harclip.config import Settings
from harclip.io import store
from harclip.io.kafka import make_producer
from harclip.io.topics import ensure_topics
from harclip.services.child import Child

PARTITIONS = 3
START_TIMEOUT_S = 60.0


def worker_settings(base: Settings, bundle: Path, **batching: Any) -> Settings:
    """`base` (a test's unique settings) with the bundle, metrics on a free port, and overrides
    of the batching section."""
    return base.model_copy(update={
        "model": base.model.model_copy(update={"bundle": bundle}),
        "kafka": base.kafka.model_copy(update={"partitions": PARTITIONS}),
        "batching": base.batching.model_copy(update=batching),
        "metrics": base.metrics.model_copy(update={"port": 0}),
    })  # fmt: skip


def predicted(w: Worker) -> float:
    """Frames with a Prediction written to every sink (the worker's Prometheus counter)."""
    return w.metrics.total("harclip_frames_predicted")


def failed(w: Worker) -> float:
    """Frames sent to the dead-letter topic."""
    return w.metrics.total("harclip_frames_failed")


def dropped(w: Worker) -> float:
    """Live frames dropped unprocessed (stale)."""
    return w.metrics.total("harclip_frames_dropped")


@contextlib.asynccontextmanager
async def running_worker(settings: Settings) -> AsyncIterator[Worker]:
    """A worker in this process, consuming; stopped (gracefully) on exit."""
    stop = asyncio.Event()
    box: list[Worker] = []
    started = asyncio.Event()

    def on_start(w: Worker) -> None:
        box.append(w)
        started.set()

    task = asyncio.create_task(run(settings, stop=stop, started=on_start))
    waiter = asyncio.create_task(started.wait())
    await asyncio.wait({task, waiter}, timeout=START_TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        waiter.cancel()
        task.result()  # raises the start-up error
        pytest.fail("the worker returned before it started")
    if not started.is_set():
        pytest.fail(f"the worker did not start within {START_TIMEOUT_S:g} s")
    worker = box[0]
    await asyncio.wait_for(worker.assigned.wait(), START_TIMEOUT_S)
    try:
        yield worker
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)


@contextlib.asynccontextmanager
async def producer(settings: Settings) -> AsyncIterator[AIOKafkaProducer]:
    await ensure_topics(settings.kafka, partitions=PARTITIONS)
    p = make_producer(settings.kafka)
    await p.start()
    try:
        yield p
    finally:
        await p.stop()


@contextlib.asynccontextmanager
async def redis_server(port: int, workdir: Path) -> AsyncIterator[Child]:
    """A private redis-server on `port` (no persistence), up once it logs that it accepts
    connections and answers PING; killed on exit."""
    proc = Child(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                  "--appendonly", "no", "--dir", str(workdir), "--loglevel", "notice"],
                 name="redis-server")  # fmt: skip
    try:
        await proc.await_line("Ready to accept connections", timeout_s=30)
        client = store.make_redis(Settings().redis.model_copy(update={"url": redis_url(port)}))
        try:
            await store.ping(client)
        finally:
            await client.aclose()
        yield proc
    finally:
        await proc.astop(kill=True)


def redis_url(port: int) -> str:
    return f"redis://127.0.0.1:{port}/0"


async def ready(port: int) -> tuple[int, str]:
    async with httpx.AsyncClient() as http:
        r = await http.get(f"http://127.0.0.1:{port}/ready")
    return r.status_code, r.text
