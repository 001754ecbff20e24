"""The chaos rig: private Kafka, Elasticsearch and Redis (their own ports and state folder, so
killing them hurts no other test), two worker processes, the API process, two producers and one
WebSocket subscriber per stream, under steady load.

These tests run only with `HARCLIP_CHAOS=1` (`make chaos`); a plain `pytest tests` skips the
folder. Each test ends with `Rig.check`: every frame sent has exactly one Elasticsearch document,
Redis `latest` is each stream's last frame, every subscriber saw every frame of its stream, and the
DLQ holds the poison records the load mixed in and nothing else. The table of faults is printed at
the end of the session (and written to state/chaos/table.json).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from aiokafka.structs import TopicPartition

from harclip.client import AsyncClient
from harclip.config import Settings, load_settings
from harclip.io import store
from harclip.io.es import make_es
from harclip.io.topics import ensure_topics, start_frame_producer
from harclip.messages import Frame, new_frame_id, now_ms
from harclip.services import manager
from harclip.services.base import Service
from producers.upload import image_jpeg
from tests.integration.conftest import settings_env
from tests.integration.conftest import unique as unique  # a test's own names (test_poison)
from tests.integration.consumers.conftest import header, read_topic

ROOT = Path(__file__).resolve().parents[2]
STATE = ROOT / "state" / "chaos"
# Ports of the private services: none of the defaults (9092, 9200, 6379) nor a worktree's .env
KAFKA_PORT, CONTROLLER_PORT = 21192, 21193
ES_PORT, ES_TRANSPORT_PORT = 21200, 21400
REDIS_PORT = 21379
PARTITIONS = 4
RATE_PER_STREAM = 5.0  # frames/s; 2 producers x 2 streams: 20 frames/s in all
POISON_EVERY = 40  # every 40th upload is a poison record (not an image)
START_TIMEOUT_S = 180.0
SETTLE_TIMEOUT_S = 300.0


def pytest_ignore_collect(collection_path: Path) -> bool | None:
    """Collect the chaos tests only under `make chaos` (HARCLIP_CHAOS=1)."""
    if os.environ.get("HARCLIP_CHAOS") != "1" and collection_path.suffix == ".py":
        return collection_path.name.startswith("test_")
    return None


# -- the table ------------------------------------------------------------------------------------


@dataclass
class Row:
    """One fault's line in the table (times in seconds)."""

    fault: str
    outage_s: float = 0.0  # fault injected -> the service / process is back
    recovery_s: float = 0.0  # fault injected -> every record produced until it was back committed
    sent: int = 0
    lost: int = 0  # frames sent without an Elasticsearch document
    duplicated: int = 0  # frames with more than one document
    latest_wrong: int = 0  # streams whose Redis `latest` is not their last frame
    gaps: int = 0  # frames a subscriber of their stream never got
    dlq_not_poison: int = 0  # DLQ records that were not poison
    poison_missing: int = 0  # poison records not in the DLQ
    note: str = ""


ROWS: list[Row] = []


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not ROWS:
        return
    cols = ["fault", "outage s", "recovery s", "sent", "lost", "dup", "latest", "gaps",
            "dlq!poison", "poison miss"]  # fmt: skip
    lines = [" | ".join(cols), " | ".join("---" for _ in cols)]
    for r in ROWS:
        lines.append(" | ".join(str(x) for x in (
            r.fault, f"{r.outage_s:.1f}", f"{r.recovery_s:.1f}", r.sent, r.lost, r.duplicated,
            r.latest_wrong, r.gaps, r.dlq_not_poison, r.poison_missing)))  # fmt: skip
    terminalreporter.write_sep("=", "chaos: faults, recovery, frames lost (goal 0)")
    for line in lines:
        terminalreporter.write_line(line)
    STATE.mkdir(parents=True, exist_ok=True)
    (STATE / "table.json").write_text(json.dumps([asdict(r) for r in ROWS], indent=1))


# -- private services -----------------------------------------------------------------------------


@dataclass
class Services:
    settings: Settings
    by_name: dict[str, Service]

    def up(self, name: str) -> None:
        manager.up([self.by_name[name]])

    def down(self, name: str) -> None:
        """SIGTERM, wait for the exit (SIGKILL after the service's grace time)."""
        manager.down([self.by_name[name]])

    def kill(self, name: str) -> None:
        """SIGKILL, wait for the exit."""
        pid = self.by_name[name].status().pid
        assert pid is not None, f"{name} is not running"
        os.kill(pid, signal.SIGKILL)
        manager.down([self.by_name[name]])  # reaps it, removes the pid file


def private_settings(base: Settings) -> Settings:
    return base.model_copy(update={
        "kafka": base.kafka.model_copy(update={"bootstrap": f"127.0.0.1:{KAFKA_PORT}"}),
        "elasticsearch": base.elasticsearch.model_copy(
            update={"url": f"http://127.0.0.1:{ES_PORT}"}),
        "redis": base.redis.model_copy(update={"url": f"redis://127.0.0.1:{REDIS_PORT}/0"}),
        "services": base.services.model_copy(update={
            "state_dir": STATE, "kafka_controller_port": CONTROLLER_PORT,
            "elasticsearch_transport_port": ES_TRANSPORT_PORT,
            "cache_dir": base.services.downloads.resolve()}),
    })  # fmt: skip


@pytest.fixture(scope="session")
def settings(services: Services) -> Settings:
    """The private services' settings (`unique` builds on them)."""
    return services.settings


@pytest.fixture(scope="session")
def services() -> Iterator[Services]:
    """Kafka, Elasticsearch and Redis of the chaos tests alone, started and stopped here."""
    s = private_settings(load_settings())
    built = manager.build(s)
    manager.up(built)
    try:
        yield Services(s, {svc.name: svc for svc in built})
    finally:
        manager.down(built)


# -- processes ------------------------------------------------------------------------------------


class Proc:
    """A child process whose merged output is kept (and mirrored to a log file), so a test can wait
    for the line that says something happened."""

    def __init__(self, name: str, proc: asyncio.subprocess.Process, log: Path) -> None:
        self.name, self.proc, self.log = name, proc, log
        self.lines: list[str] = []
        self._changed = asyncio.Event()
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def start(cls, name: str, args: list[str], env: dict[str, str]) -> Proc:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, *args, cwd=ROOT, env={**os.environ, **env},
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        STATE.mkdir(parents=True, exist_ok=True)
        return cls(name, proc, STATE / f"{name}.log")

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        with self.log.open("a") as out:
            while line := (await self.proc.stdout.readline()).decode(errors="replace"):
                out.write(line)
                out.flush()
                self.lines.append(line)
                self._changed.set()
        self._changed.set()

    async def wait_line(self, pattern: str, since: int = 0, timeout_s: float = START_TIMEOUT_S
                        ) -> str:  # fmt: skip
        """The first output line from index `since` on that matches the regex `pattern`."""
        found = re.compile(pattern)
        seen = since
        async with asyncio.timeout(timeout_s):
            while True:
                for line in self.lines[seen:]:
                    if found.search(line):
                        return line
                seen = max(seen, len(self.lines))
                if self._reader.done():
                    raise AssertionError(f"{self.name} exited ({self.proc.returncode}) before "
                                         f"{pattern!r}; log {self.log}")  # fmt: skip
                self._changed.clear()
                await self._changed.wait()

    async def kill(self) -> None:
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGKILL)
        await self.proc.wait()
        await self._reader

    async def stop(self, timeout_s: float = 60.0) -> int:
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), timeout_s)
            except TimeoutError:
                self.proc.kill()
        code = await self.proc.wait()
        await self._reader
        return code


# -- load -----------------------------------------------------------------------------------------


@dataclass
class Producer:
    """One producer task: frames of its streams at RATE_PER_STREAM each, round robin; a frame
    counts as sent once Kafka acknowledged it (a failed send is retried, same frame id)."""

    name: str
    topic: str
    streams: list[str]
    poison: bool  # mix in poison records (upload producer)
    sent: dict[str, list[Frame]] = field(default_factory=dict)
    poison_ids: set[str] = field(default_factory=set)
    send_errors: int = 0
    acked: asyncio.Event = field(default_factory=asyncio.Event)  # set on every acknowledgement

    @property
    def count(self) -> int:
        return sum(len(v) for v in self.sent.values())

    async def run(self, s: Settings, photos: list[bytes], stop: asyncio.Event) -> None:
        # as the camera and upload producers send: renewed when a broker restart breaks it
        p = await start_frame_producer(s.kafka, role="bulk" if self.poison else "live")
        try:
            start, n = time.monotonic(), 0
            rate = RATE_PER_STREAM * len(self.streams)
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):  # the load's pace, not a wait
                    await asyncio.wait_for(
                        stop.wait(), max(0.0, start + n / rate - time.monotonic())
                    )
                if stop.is_set():
                    break
                sid = self.streams[n % len(self.streams)]
                seq = len(self.sent.setdefault(sid, []))
                at = now_ms()
                poison = self.poison and n % POISON_EVERY == POISON_EVERY - 1
                data = b"poison: not an image" if poison else photos[n % len(photos)]
                frame = Frame(new_frame_id(at), sid, seq, at, data)
                await self._send(p, frame)
                if poison:
                    self.poison_ids.add(frame.frame_id)
                else:
                    self.sent[sid].append(frame)
                self.acked.set()
                n += 1
        finally:
            await p.stop()

    async def _send(self, p: Any, frame: Frame) -> None:
        while True:
            try:
                await asyncio.wait_for(await p.send_frame(self.topic, frame), 60)
                return
            except (KafkaError, TimeoutError):
                self.send_errors += 1
                await asyncio.sleep(0.2)  # the broker is away: try the same frame again


@dataclass
class Subscriber:
    """A WebSocket subscription of one stream through the API: frame ids received, in order."""

    stream: str
    received: list[str] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    error: BaseException | None = None

    async def run(self, client: AsyncClient, subscribed: asyncio.Event) -> None:
        sub = client.subscribe(self.stream, max_reconnects=10_000)
        watch = asyncio.ensure_future(sub.subscribed.wait())
        watch.add_done_callback(lambda _: subscribed.set())
        try:
            async for m in sub:
                self.received.append(m.prediction.frame_id)
                self.changed.set()
        except Exception as e:  # kept for the check, which names it
            self.error = e
        finally:
            watch.cancel()
            await sub.close()


def _photos(sample_photos: list[Path], s: Settings) -> list[bytes]:
    return [image_jpeg(p, 224, s.model.max_pixels) for p in sample_photos[::12]]


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Rig:
    """Two workers, the API, two producers and the subscribers, on names unique to one test."""

    def __init__(self, services: Services, bundle: Path, photos: list[bytes]) -> None:
        self.services = services
        sfx = uuid.uuid4().hex[:10]
        self.suffix = sfx
        base = services.settings
        k, r, e = base.kafka, base.redis, base.elasticsearch
        self.settings = base.model_copy(update={
            "kafka": k.model_copy(update={"topics": k.topics.with_prefix(f"chaos-{sfx}."),
                                          "group_id": f"chaos-{sfx}", "partitions": PARTITIONS,
                                          "client_id": f"chaos-{sfx}"}),
            "redis": r.model_copy(update={"key_prefix": f"chaos-{sfx}"}),
            "elasticsearch": e.model_copy(update={
                "predictions_index": f"chaos-pred-{sfx}", "events_index": f"chaos-events-{sfx}",
                "logs_index": f"chaos-logs-{sfx}"}),
        })  # fmt: skip
        self.bundle, self.photos = bundle, photos
        self.env = settings_env(self.settings) | {"HARCLIP_BATCHING__MAX_AGE_MS": "3600000"}
        self.workers: list[Proc | None] = [None, None]
        self.api: Proc | None = None
        self.api_port = _free_port()
        t = self.settings.kafka.topics
        self.producers = [
            Producer("cameras", t.frames, ["cam-0", "cam-1"], poison=False),
            Producer("uploads", t.uploads, ["job-0", "job-1"], poison=True),
        ]
        self.subscribers = [Subscriber(sid) for p in self.producers for sid in p.streams]
        self._stop_load = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._client: AsyncClient | None = None

    # processes

    async def start_worker(self, i: int) -> Proc:
        w = await Proc.start(f"worker{i}-{self.suffix}", [
            "-m", "consumers", "--bundle", str(self.bundle), "--partitions", str(PARTITIONS),
            "--metrics-port", "0", "--max-batch", "8"], self.env)  # fmt: skip
        await w.wait_line(r"worker up")
        self.workers[i] = w
        return w

    async def kill_worker(self, i: int) -> None:
        w = self.workers[i]
        assert w is not None
        await w.kill()

    async def start_api(self) -> Proc:
        api = await Proc.start(
            f"api-{self.suffix}",
            ["-m", "api", "--bundle", str(self.bundle), "--port", str(self.api_port)],
            self.env,
        )
        async with httpx.AsyncClient() as http, asyncio.timeout(START_TIMEOUT_S):
            while True:  # up once /health answers (uvicorn listens after the app started)
                assert api.proc.returncode is None, f"the API exited; log {api.log}"
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get(f"{self.api_url}/health")).status_code == 200:
                        break
                await asyncio.sleep(0.2)
        self.api = api
        return api

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    # load

    async def start(self) -> None:
        await ensure_topics(self.settings.kafka, partitions=PARTITIONS)
        await asyncio.gather(self.start_worker(0), self.start_worker(1), self.start_api())
        self._client = AsyncClient(self.api_url)
        subscribed = [asyncio.Event() for _ in self.subscribers]
        for sub, ev in zip(self.subscribers, subscribed, strict=True):
            self._tasks.append(asyncio.create_task(sub.run(self._client, ev)))
        await asyncio.wait_for(asyncio.gather(*(e.wait() for e in subscribed)), 60)
        for p in self.producers:
            self._tasks.append(asyncio.create_task(p.run(self.settings, self.photos,
                                                         self._stop_load)))  # fmt: skip

    def sent(self) -> dict[str, list[Frame]]:
        return {sid: frames for p in self.producers for sid, frames in p.sent.items()}

    def total_sent(self) -> int:
        return sum(p.count for p in self.producers)

    async def until_sent(self, more: int, timeout_s: float = 120.0) -> None:
        """Until the producers have had `more` frames acknowledged since the call."""
        target = self.total_sent() + more
        async with asyncio.timeout(timeout_s):
            while self.total_sent() < target:
                for p in self.producers:
                    p.acked.clear()
                await asyncio.wait([asyncio.create_task(p.acked.wait()) for p in self.producers],
                                   return_when=asyncio.FIRST_COMPLETED)  # fmt: skip

    async def stop_load(self) -> None:
        self._stop_load.set()
        producing = self._tasks[len(self.subscribers) :]
        await asyncio.gather(*producing)

    async def close(self) -> None:
        self._stop_load.set()
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()
        for proc in [*self.workers, self.api]:
            if proc is not None:
                await proc.stop()

    # progress

    async def end_offsets(self) -> dict[TopicPartition, int]:
        from aiokafka import AIOKafkaConsumer

        t = self.settings.kafka.topics
        c = AIOKafkaConsumer(bootstrap_servers=self.settings.kafka.bootstrap)
        await c.start()
        try:
            tps = [TopicPartition(topic, i) for topic in (t.frames, t.uploads)
                   for i in range(PARTITIONS)]  # fmt: skip
            return dict(await c.end_offsets(tps))
        finally:
            await c.stop()

    async def committed(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        admin = AIOKafkaAdminClient(bootstrap_servers=self.settings.kafka.bootstrap)
        await admin.start()
        try:
            got = await admin.list_consumer_group_offsets(self.settings.kafka.group_id,
                                                          partitions=tps)  # fmt: skip
        finally:
            await admin.close()
        return {tp: (got[tp].offset if tp in got and got[tp].offset >= 0 else 0) for tp in tps}

    async def until_committed(self, ends: dict[TopicPartition, int],
                              timeout_s: float = SETTLE_TIMEOUT_S) -> float:  # fmt: skip
        """Until the group has committed every record up to `ends`; returns when (monotonic).
        Kafka may be unreachable meanwhile (it is asked again)."""
        async with asyncio.timeout(timeout_s):
            while True:
                with contextlib.suppress(KafkaError, OSError):
                    got = await self.committed(list(ends))
                    if all(got[tp] >= end for tp, end in ends.items()):
                        return time.monotonic()
                await asyncio.sleep(0.2)  # the group's commits are not observable as an event

    async def recovered(self, fault_at: float, timeout_s: float = SETTLE_TIMEOUT_S) -> float:
        """Seconds from `fault_at` until every record produced until now is committed and every
        subscriber has the last frame its stream had now."""
        last = {sid: frames[-1].frame_id for sid, frames in self.sent().items() if frames}
        ends = await self._retry(self.end_offsets, timeout_s)
        done = await self.until_committed(ends, timeout_s)
        async with asyncio.timeout(timeout_s):
            for sub in self.subscribers:
                while sub.error is None and last.get(sub.stream) not in (None, *sub.received):
                    sub.changed.clear()
                    await sub.changed.wait()
        return max(done, time.monotonic()) - fault_at

    async def _retry(self, fn: Any, timeout_s: float) -> Any:
        async with asyncio.timeout(timeout_s):
            while True:
                with contextlib.suppress(KafkaError, OSError):
                    return await fn()
                await asyncio.sleep(0.5)

    # the invariants

    async def check(self, row: Row) -> Row:
        """Stop the load, wait until everything sent is committed and seen, and fill `row`."""
        await self.stop_load()
        ends = await self._retry(self.end_offsets, 60)
        await self.until_committed(ends)
        sent = self.sent()
        ids = {f.frame_id for frames in sent.values() for f in frames}
        poison = set().union(*(p.poison_ids for p in self.producers))
        row.sent = len(ids)

        # subscribers: every frame of their stream (replays may repeat one: not a gap)
        async with asyncio.timeout(120):
            for sub in self.subscribers:
                want = {f.frame_id for f in sent.get(sub.stream, [])}
                while sub.error is None and not want <= set(sub.received):
                    sub.changed.clear()
                    await sub.changed.wait()
        for sub in self.subscribers:
            want = {f.frame_id for f in sent.get(sub.stream, [])}
            row.gaps += len(want - set(sub.received))
            assert sub.error is None, f"subscriber {sub.stream}: {sub.error!r}"

        # Elasticsearch: exactly one document per frame
        es = make_es(self.settings.elasticsearch)
        try:
            index = self.settings.elasticsearch.predictions_index
            await es.indices.refresh(index=index)
            docs = Counter[str]()
            async for hit in _scan(es, index):
                docs[hit] += 1
        finally:
            await es.close()
        row.lost = len(ids - set(docs))
        row.duplicated = sum(1 for n in docs.values() if n > 1)
        foreign = set(docs) - ids

        # Redis: latest is each stream's last frame
        r = store.make_redis(self.settings.redis)
        try:
            for sid, frames in sent.items():
                latest = await store.read_latest(r, self.settings.redis, sid)
                if latest is None or latest.frame_id != frames[-1].frame_id:
                    row.latest_wrong += 1
        finally:
            await r.aclose()

        # DLQ: the poison and nothing else
        dlq = await read_topic(self.settings, self.settings.kafka.topics.dlq)
        dead = {header(rec, "frame_id") or "" for rec in dlq}
        row.dlq_not_poison = len(dead - poison)
        row.poison_missing = len(poison - dead)
        ROWS.append(row)
        assert not foreign, f"documents of frames never sent: {sorted(foreign)[:5]}"
        return row


async def _scan(es: Any, index: str) -> AsyncIterator[str]:
    """Every document `_id` of `index` (search_after on _id-sorted pages of 5,000)."""
    after: list[Any] | None = None
    while True:
        body: dict[str, Any] = {"size": 5000, "sort": [{"frame_id": "asc"}], "_source": False,
                                "query": {"match_all": {}}}  # fmt: skip
        if after is not None:
            body["search_after"] = after
        hits = (await es.search(index=index, **body))["hits"]["hits"]
        if not hits:
            return
        for h in hits:
            yield h["_id"]
        after = hits[-1]["sort"]


async def cleanup(s: Settings, suffix: str) -> None:
    es = make_es(s.elasticsearch)
    try:
        await es.options(ignore_status=404).indices.delete(index=f"*{suffix}*",
                                                           allow_no_indices=True)  # fmt: skip
        await es.options(ignore_status=404).indices.delete_index_template(name=f"*{suffix}*")
    finally:
        await es.close()
    r = store.make_redis(s.redis)
    try:
        keys = [k async for k in r.scan_iter(match=f"*{suffix}*", count=1000)]
        if keys:
            await r.delete(*keys)
    finally:
        await r.aclose()
    admin = AIOKafkaAdminClient(bootstrap_servers=s.kafka.bootstrap)
    await admin.start()
    try:
        topics = [t for t in await admin.list_topics() if suffix in t]
        if topics:
            await admin.delete_topics(topics)
    finally:
        await admin.close()


@pytest.fixture
async def rig(services: Services, tiny_bundle: Path, sample_photos: list[Path]
              ) -> AsyncIterator[Rig]:  # fmt: skip
    """The running rig under load; closed (and its names deleted) after the test."""
    for name in ("kafka", "elasticsearch", "redis"):  # a test that failed mid-fault
        services.up(name)
    rig = Rig(services, tiny_bundle, _photos(sample_photos, services.settings))
    try:
        await rig.start()
        await rig.until_sent(40)  # steady load before the fault
        yield rig
    finally:
        await rig.close()
        await cleanup(rig.settings, rig.suffix)
