"""The chaos rig: two worker processes, the API process, two producers and one WebSocket
subscriber per stream, on names unique to one test, and the invariants each test ends with."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from aiokafka.structs import TopicPartition

from harclip.client import AsyncClient
from harclip.config import Settings
from harclip.io import store
from harclip.io.es import make_es
from harclip.io.topics import ensure_topics
from harclip.messages import Frame
from harclip.services.child import Child
from producers.upload import image_jpeg
from tests.support.chaos.load import Producer, Subscriber
from tests.support.chaos.services import (
    PARTITIONS,
    ROWS,
    SETTLE_TIMEOUT_S,
    START_TIMEOUT_S,
    STATE,
    Row,
    Services,
)
from tests.support.kafka import header, read_topic
from tests.support.processes import ROOT, env_of, free_port
from tests.support.scoped import new_suffix


def photos(sample_photos: list[Path], s: Settings) -> list[bytes]:
    return [image_jpeg(p, 224, s.model.max_pixels) for p in sample_photos[::12]]


def _start(name: str, module: str, env: dict[str, str], *args: str) -> Child:
    """`python -m module ARGS`, its output kept in STATE/NAME.log."""
    return Child.python(module, *args, env=env, cwd=ROOT, log=STATE / f"{name}.log", name=name)


class Rig:
    """Two workers, the API, two producers and the subscribers, on names unique to one test."""

    def __init__(self, services: Services, bundle: Path, photos: list[bytes]) -> None:
        self.services = services
        sfx = new_suffix()
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
        self.env = env_of(self.settings, {"HARCLIP_BATCHING__MAX_AGE_MS": "3600000"})
        self.workers: list[Child | None] = [None, None]
        self.api: Child | None = None
        self.api_port = free_port()
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

    async def start_worker(self, i: int) -> Child:
        w = _start(f"worker{i}-{self.suffix}", "consumers", self.env,
                   "--bundle", str(self.bundle), "--partitions", str(PARTITIONS),
                   "--metrics-port", "0", "--max-batch", "8")  # fmt: skip
        await w.await_line(r"worker up", START_TIMEOUT_S)
        self.workers[i] = w
        return w

    async def kill_worker(self, i: int) -> None:
        w = self.workers[i]
        assert w is not None
        await w.astop(kill=True)

    async def start_api(self) -> Child:
        api = _start(f"api-{self.suffix}", "api", self.env,
                     "--bundle", str(self.bundle), "--port", str(self.api_port))  # fmt: skip
        # up once /health answers (uvicorn listens after the app started)
        await api.await_ready(f"{self.api_url}/health", START_TIMEOUT_S)
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
                await proc.astop(60.0)

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
