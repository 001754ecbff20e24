"""The UI against a real system: the API and an inference worker as child processes (as
`python -m api` and `python -m consumers` run in production) over the real Kafka, Redis and
Elasticsearch with names unique to this session, and sample photos ingested and predicted.

Started once for every UI test (AppTest pages and the browser), since starting a worker and the
API takes most of a UI test's time; each test uses stream ids of its own.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import httpx
import pytest

from harclip.client import Client, NotFound, ServerError
from harclip.config import Settings
from harclip.io import search
from harclip.io.es import make_es
from harclip.io.indices import ensure_templates
from harclip.io.keys import evidence_keys
from harclip.io.objects import ObjectStore
from harclip.messages import Event, Evidence, event_id
from tests.integration.api.conftest import ADMIN_KEY, api_env
from tests.integration.conftest import LogWatch, _cleanup

ROOT = Path(__file__).resolve().parents[3]
T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(what: str, check: Callable[[], T | None], timeout_s: float = 120.0) -> T:
    """Poll `check` until it returns something other than None (or False); its value."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value is not None and value is not False:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_s:g} s: {what}")
        time.sleep(0.2)  # polling a condition, not waiting for time to pass


def _http_ok(url: str) -> bool | None:
    try:
        return httpx.get(url, timeout=2.0).status_code == 200 or None
    except httpx.HTTPError:
        return None


def _scoped(settings: Settings, suffix: str) -> Settings:
    """`settings` with topics, group, indices and Redis keys unique to `suffix` (as the
    integration tests' `unique` fixture, for a whole session)."""
    k, r, e = settings.kafka, settings.redis, settings.elasticsearch
    return settings.model_copy(
        update={
            "kafka": k.model_copy(
                update={
                    "topics": k.topics.with_prefix(f"test-{suffix}."),
                    "group_id": f"{k.group_id}-{suffix}",
                    "client_id": f"{k.client_id}-{suffix}",
                }
            ),
            "redis": r.model_copy(update={"key_prefix": f"{r.key_prefix}-{suffix}"}),
            "elasticsearch": e.model_copy(
                update={
                    "predictions_index": f"{e.predictions_index}-{suffix}",
                    "events_index": f"{e.events_index}-{suffix}",
                    "logs_index": f"{e.logs_index}-{suffix}",
                }
            ),
        }
    )


@dataclass(frozen=True)
class System:
    """The running system the UI is pointed at."""

    api_url: str
    worker_metrics_url: str
    events_metrics_url: str
    settings: Settings
    photos: list[Path]

    def client(self) -> Client:
        return Client(self.api_url, ADMIN_KEY)

    def ui_env(self) -> dict[str, str]:
        """HARCLIP_UI__* for a UI on this system (with the admin key)."""
        return {
            "HARCLIP_UI__API_URL": self.api_url,
            "HARCLIP_UI__API_KEY": ADMIN_KEY,
            "HARCLIP_UI__WORKER_METRICS_URL": self.worker_metrics_url,
            "HARCLIP_UI__EVENTS_METRICS_URL": self.events_metrics_url,
        }

    def ingest(
        self,
        stream_id: str,
        photos: list[Path],
        before_each: Callable[[int], None] | None = None,
    ) -> list[str]:
        """Send `photos` to `stream_id` over one ingest connection (`before_each(i)` runs before
        the i-th is sent) and wait until the worker predicted each of them into Redis and
        Elasticsearch; their frame ids."""

        def frames() -> Iterator[bytes]:
            for i, p in enumerate(photos):
                if before_each is not None:
                    before_each(i)
                yield p.read_bytes()

        with self.client() as c:
            ids = [a.frame_id for a in c.ingest(stream_id, frames())]

            def indexed() -> bool:
                try:  # the index may be new: its shards answer 503 for a moment
                    page = c.history(stream_id, size=len(ids) + 50)
                except ServerError:
                    return False
                return {p.frame_id for p in page.items} >= set(ids)

            def latest() -> bool:
                try:
                    return c.latest(stream_id).frame_id == ids[-1]
                except NotFound:
                    return False

            wait_for(f"{len(ids)} predictions of {stream_id} in history", indexed)
            wait_for(f"latest of {stream_id}", latest)
        return ids

    def play(self, stream_id: str, scenes: list[tuple[Path, float]]) -> None:
        """Send each scene's photo to `stream_id` again and again for its seconds of wall clock
        (the API stamps each frame's capture time on arrival), like a camera whose view changes;
        returns once the last frame is the stream's latest prediction."""
        last = ""
        with self.client() as c:
            for photo, seconds in scenes:
                last = c.ingest(stream_id, _repeat(photo.read_bytes(), seconds))[-1].frame_id

            def latest() -> bool:
                try:
                    return c.latest(stream_id).frame_id == last
                except NotFound:
                    return False

            wait_for(f"the last frame of {stream_id}", latest)


def _repeat(data: bytes, seconds: float) -> Iterator[bytes]:
    """`data` again and again for `seconds` (each sent once the previous one is acknowledged)."""
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        yield data


def _stop(proc: subprocess.Popen[str] | LogWatch) -> None:
    if isinstance(proc, LogWatch):
        proc.stop()
        return
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


ACTS = "ui-acts"  # a stream whose view changes twice: segments and events


def _act(system: System, seeded: list[str]) -> None:
    """Play two photos on ACTS whose predictions (by the worker, from the seeded frames) have
    different top labels, each with a clear lead, as A, B, A for 2.5 s each (the events app
    confirms a segment after 1 s of it); wait until a segment has ended and one is current."""
    with system.client() as c:
        page = c.history("ui-seed", size=100)
        by_id = {p.frame_id: p for p in page.items}
        preds = [by_id[i] for i in seeded]

        def lead(i: int) -> float:
            top = preds[i].top_k
            return top[0].score - top[1].score if len(top) > 1 else 1.0

        order = sorted(range(len(preds)), key=lead, reverse=True)
        a = order[0]
        b = next(i for i in order if preds[i].label != preds[a].label)
        photos = system.photos
        system.play(ACTS, [(photos[a], 2.5), (photos[b], 2.5), (photos[a], 2.5)])
        seen: list[object] = []

        def ended() -> bool:
            try:
                action = c.stream_action(ACTS)
                events = c.events(stream_id=ACTS, size=100).items
            except (NotFound, ServerError) as e:
                seen[:] = [e]
                return False
            seen[:] = [action, [(e.type, e.label, e.start, e.end) for e in events]]
            ends = [e for e in events if e.type == "segment.end"]
            return action.state == "active" and action.label is not None and len(ends) >= 1

        try:
            wait_for("a segment of ui-acts ended and one is current", ended)
        except AssertionError as e:
            labels = (preds[a].label, preds[b].label)
            raise AssertionError(f"{e}; played {labels}; seen {seen}") from None


@pytest.fixture(scope="session")
def ui_system(
    settings: Settings,
    tiny_bundle: Path,
    sample_photos: list[Path],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[System]:
    suffix = uuid.uuid4().hex[:10]
    s = _scoped(settings, suffix)
    # The engine is not the subject here: the plain ONNX engine skips per-start validation.
    env = {**os.environ, **api_env(s), "HARCLIP_MODEL__ENGINE": "onnx",
           # the seeded streams keep their latest frames for the session (the default TTL,
           # 60 s, is shorter than the browser tests that run before the pages' tests)
           "HARCLIP_REDIS__FRAME_TTL_S": "3600"}  # fmt: skip
    api_port, metrics_port, events_port = free_port(), free_port(), free_port()
    worker = LogWatch(
        [sys.executable, "-m", "consumers", "--bundle", str(tiny_bundle)],
        cwd=ROOT, env={**env, "HARCLIP_METRICS__PORT": str(metrics_port)},
    )  # fmt: skip
    api = LogWatch(
        [sys.executable, "-m", "api", "--bundle", str(tiny_bundle), "--port", str(api_port)],
        cwd=ROOT, env=env,
    )  # fmt: skip
    events_app = LogWatch(
        [sys.executable, "-m", "stream"],
        cwd=ROOT,
        env={**env, "HARCLIP_STREAM__APP_ID": f"harclip-stream-{suffix}",
             "HARCLIP_STREAM__DATADIR": str(tmp_path_factory.mktemp("ui-stream")),
             "HARCLIP_STREAM__STORE": "memory", "HARCLIP_STREAM__PORT": str(events_port),
             "HARCLIP_STREAM__COMMIT_INTERVAL_S": "0.5", "HARCLIP_STREAM__SESSION_TIMEOUT_S": "10",
             # the played stream stays up (its action current) for the whole session
             "HARCLIP_STREAM__IDLE_TIMEOUT_S": "3600"},
    )  # fmt: skip
    system = System(
        api_url=f"http://127.0.0.1:{api_port}",
        worker_metrics_url=f"http://127.0.0.1:{metrics_port}/metrics",
        events_metrics_url=f"http://127.0.0.1:{events_port}/metrics",
        settings=s,
        photos=sample_photos[::60],  # one of each class
    )
    try:
        wait_for("the API is ready", lambda: _http_ok(f"{system.api_url}/ready"))
        for name, metrics in (("worker", system.worker_metrics_url),
                              ("events app", system.events_metrics_url)):  # fmt: skip
            ready = metrics.removesuffix("/metrics") + "/ready"
            wait_for(f"the {name} is ready", lambda u=ready: _http_ok(u))
        _act(system, system.ingest("ui-seed", system.photos))
        yield system
    finally:
        for p in (api, worker, events_app):
            _stop(p)
        _cleanup(settings, suffix)


async def seed_evidence(s: Settings, stream: str, photo: Path, clip: bytes) -> str:
    """An event with its snapshot, thumbnail and clip, as the events app writes them."""
    at = 1_764_223_200_000
    eid = event_id(stream, "segment.end", 1)
    keys = evidence_keys(stream, at, eid)
    store = ObjectStore(s.objects)
    es = make_es(s.elasticsearch)
    try:
        await store.start()
        await store.put(keys.snapshot, photo.read_bytes(), "image/jpeg")
        await store.put(keys.thumbnail, photo.read_bytes(), "image/jpeg")
        await store.put(keys.clip, clip, "video/mp4")
        ev = Event(event_id=eid, type="segment.end", stream_id=stream, label="fighting",
                   start=at, end=at + 2000, frames=20, emitted_at=at + 2100,
                   evidence=Evidence(snapshot=keys.snapshot, thumbnail=keys.thumbnail,
                                     clip=keys.clip, frames=50))  # fmt: skip
        await ensure_templates(es, s.elasticsearch)
        await search.index_events(es, s.elasticsearch, [ev])
        await es.indices.refresh(index=s.elasticsearch.events_index)
    finally:
        await store.close()
        await es.close()
    return eid


async def drop_evidence(s: Settings, stream: str) -> None:
    """Delete what `seed_evidence` put for `stream` (the object store is shared)."""
    store = ObjectStore(s.objects)
    try:
        await store.start()
        await store.delete([o.key for o in await store.list(f"evidence/{stream}/")])
    finally:
        await store.close()
