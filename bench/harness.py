"""What the benchmarks share: the API, a worker and the events app started as child processes on
given settings (through `harclip.services.child.Child`), and the sample data (`--data`, else
HARCLIP_SAMPLE_DATA), with a one-line exit 2 when it is missing."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from harclip.config import Settings, child_environ, load_settings
from harclip.errors import ServiceError
from harclip.services.child import Child
from harclip.services.process import free_port

ROOT = Path(__file__).resolve().parents[1]
_EVENTS_PORT = re.compile(r"health and metrics on http://[\d.]+:(\d+)/")


def fail(message: str) -> NoReturn:
    """End the benchmark with `message` on one stderr line and exit status 2."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


def sample_data(data: Path | str | None = None) -> Path:
    """The shared sample data folder (with `har-sample/` and `video/`): `data` when given, else
    HARCLIP_SAMPLE_DATA; `fail`s when neither names a folder with one of them."""
    folder = Path(data) if data is not None else load_settings().sample_data
    if folder is None:
        fail("no sample data: pass --data DIR or set HARCLIP_SAMPLE_DATA (a folder with "
             "har-sample/ and video/)")  # fmt: skip
    if not any((folder / sub).is_dir() for sub in ("har-sample", "video")):
        fail(f"no sample data in {folder}: expected har-sample/ or video/ in it (the shared data "
             "folder; --data DIR or HARCLIP_SAMPLE_DATA)")  # fmt: skip
    return folder


def sample_photos(data: Path | str | None = None) -> list[Path]:
    """The labelled sample photos (`har-sample/<class>/*.jpg`), sorted; `fail`s when none."""
    folder = sample_data(data) / "har-sample"
    photos = sorted(folder.glob("*/*.jpg"))
    if not photos:
        fail(f"no photos in {folder} (expected har-sample/<class>/*.jpg)")
    return photos


def child(module: str, *args: str, settings: Settings, log: Path | None = None,
          pre: Sequence[str] = ()) -> Child:  # fmt: skip
    """`python [PRE] -m module ARGS` from the repository root, reading exactly `settings`; its
    output goes to `log`, or to stderr without one (stdout is the benchmark's)."""
    cmd = [sys.executable, *pre, "-m", module, *args]
    env = child_environ(settings, os.environ)
    return Child(cmd, env=env, cwd=ROOT, log=log, echo=None if log else sys.stderr, name=module)


def _ready(c: Child, url: str, timeout_s: float) -> None:
    try:
        c.wait_ready(url, timeout_s)
    except ServiceError as e:
        c.stop()
        fail(str(e).splitlines()[0])


def start_api(settings: Settings, bundle: Path, *, log: Path | None = None,
              ready: str = "/ready", timeout_s: float = 120.0) -> tuple[Child, str]:  # fmt: skip
    """`python -m api` on a free port, once `ready` (a path: /ready, or /health for a bench
    without the services) answers; the process and its base URL."""
    port = free_port()
    c = child("api", "--bundle", str(bundle), "--port", str(port), settings=settings, log=log)
    url = f"http://127.0.0.1:{port}"
    _ready(c, f"{url}{ready}", timeout_s)
    return c, url


def start_worker(settings: Settings, bundle: Path, *args: str, log: Path | None = None,
                 timeout_s: float = 300.0) -> tuple[Child, int]:  # fmt: skip
    """`python -m consumers ARGS` with its health server on a free port, once /ready answers
    (partitions assigned); the process and that port."""
    port = free_port()
    c = child("consumers", "--bundle", str(bundle), "--metrics-port", str(port), *args,
              settings=settings, log=log)  # fmt: skip
    _ready(c, f"http://127.0.0.1:{port}/ready", timeout_s)
    return c, port


def start_events(settings: Settings, *, log: Path | None = None, profile: Path | None = None,
                 timeout_s: float = 120.0) -> tuple[Child, int]:  # fmt: skip
    """`python -m stream` (under cProfile into `profile` when given), once it logged that it is
    ready; the process and the port of its health server."""
    pre = ["-m", "cProfile", "-o", str(profile)] if profile is not None else []
    c = child("stream", settings=settings, log=log, pre=pre)
    try:
        c.wait_line("events app ready", timeout_s)
    except ServiceError as e:
        c.stop()
        fail(str(e).splitlines()[0])
    port = next(int(m.group(1)) for line in c.lines if (m := _EVENTS_PORT.search(line)))
    return c, port


async def cleanup(settings: Settings, token: str) -> None:
    """Delete the Kafka topics, Elasticsearch indices and templates and Redis keys whose names
    contain `token` (a run's own suffix), on the services `settings` points at."""
    import redis.asyncio as aioredis
    from aiokafka.admin import AIOKafkaAdminClient
    from elasticsearch import AsyncElasticsearch

    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka.bootstrap)
    await admin.start()
    try:
        topics = [t for t in await admin.list_topics() if token in t]
        if topics:
            await admin.delete_topics(topics)
    finally:
        await admin.close()
    async with AsyncElasticsearch(settings.elasticsearch.url) as es:
        await es.indices.delete(index=f"*{token}*", ignore_unavailable=True,
                                allow_no_indices=True)  # fmt: skip
        await es.options(ignore_status=404).indices.delete_index_template(name=f"*{token}*")
    r = aioredis.Redis.from_url(settings.redis.url)
    try:
        keys = [k async for k in r.scan_iter(match=f"*{token}*", count=1000)]
        if keys:
            await r.delete(*keys)
    finally:
        await r.aclose()
