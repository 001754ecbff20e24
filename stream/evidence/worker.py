"""Where an event's evidence is built: in worker processes (`EVIDENCE_PROCESSES`, default 1) or,
with 0, in the events app's own process (`Local`).

A build is CPU work (JPEG decode, VP8 encode) and Python work (reading the window's frames from
Kafka, S3 requests through boto3): in the app's process it takes the GIL and a core from the
agents. `Pool` runs each build (`Builder.build`: read the frames, write the objects) in a
process of a `ProcessPoolExecutor` (spawned, not forked: the app runs threads), each with its own
frame reader, object store client and event loop, under `nice(EVIDENCE_NICE)` so the agents come
first on a busy machine. The app's evidence step keeps everything else (the events consumer, the
wait for the post-roll, the bounded backlog, retries with backoff, republishing, commits): a
build either returns the `Built` evidence, its objects written, or raises (`SinkUnavailable`:
retried). A worker exits when the app does, even on SIGKILL (`PR_SET_PDEATHSIG` on Linux, and a
thread that watches the parent's pid), so no orphan writes on; what it wrote is rewritten under
the same keys when the app does the batch again. Stopping the app ends the workers at once
(a build under way is done again at the next start), so a slow build never holds up a shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import multiprocessing
import os
import signal
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import TYPE_CHECKING

from harclip.errors import SinkUnavailable

if TYPE_CHECKING:  # a worker imports the heavy modules after it lowered its priority
    from harclip.config import Settings
    from harclip.messages import Event
    from stream.evidence.build import Built, Need

_PR_SET_PDEATHSIG = 1
_WATCH_S = 0.5


class Local:
    """Builds in this process (the encoder in threads); `EVIDENCE_PROCESSES=0`."""

    def __init__(self, settings: Settings) -> None:
        from harclip.io.objects import ObjectStore
        from stream.evidence.build import Builder
        from stream.evidence.frames import FrameReader

        k = settings.kafka
        self._reader = FrameReader(k, k.topics.frames)
        self._store = ObjectStore(settings.objects)
        self._builder = Builder(settings.stream, self._reader, self._store)
        self._started = False

    async def start(self) -> None:
        """Connects the frame reader and the store (`SinkUnavailable` when one is down)."""
        if self._started:
            return
        try:
            await self._store.start()
            await self._reader.start()
        except BaseException:
            await self.stop()
            raise
        self._started = True

    async def build(self, e: Event, n: Need) -> Built:
        await self.start()
        return await self._builder.build(e, n)

    async def stop(self) -> None:
        self._started = False
        for close in (self._reader.stop, self._store.close):
            with contextlib.suppress(Exception):
                await close()


class Pool:
    """Builds in `processes` worker processes (niced); the pool is made again if one dies."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._pool: ProcessPoolExecutor | None = None
        self._others: set[int] = set()  # child processes that are not the pool's

    async def start(self) -> None:
        if self._pool is None:
            self._others = {p.pid for p in multiprocessing.active_children() if p.pid}
            s = self._settings.stream
            self._pool = ProcessPoolExecutor(
                s.evidence_processes, mp_context=multiprocessing.get_context("spawn"),
                initializer=_init, initargs=(self._settings, os.getpid(), s.evidence_nice),
            )  # fmt: skip

    async def build(self, e: Event, n: Need) -> Built:
        await self.start()
        assert self._pool is not None
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, _build, e, n)
        except BrokenProcessPool as err:  # a worker died (killed, out of memory): a new pool
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
            raise SinkUnavailable(f"an evidence worker process died: {err!r}") from err

    async def stop(self) -> None:
        """Ends the workers at once, builds under way included (their events were not
        republished nor their batch committed: the next start does them again, same keys)."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
            for p in multiprocessing.active_children():
                if p.pid not in self._others:
                    p.kill()


def builds(settings: Settings) -> Local | Pool:
    return Pool(settings) if settings.stream.evidence_processes > 0 else Local(settings)


# ---- in the worker process -------------------------------------------------------------------

_worker: tuple[asyncio.AbstractEventLoop, Local] | None = None


def _init(settings: Settings, parent: int, nice: int) -> None:
    """A worker process's start: exit with the parent, lower priority, its own loop and clients."""
    global _worker
    with contextlib.suppress(Exception):  # Linux: SIGKILL when the parent dies
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # it died before the line above
        _die()
    threading.Thread(target=_watch, args=(parent,), daemon=True, name="parent-watch").start()
    if nice:
        os.nice(nice)
    _worker = (asyncio.new_event_loop(), Local(settings))


def _watch(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(_WATCH_S)
    _die()  # the app is gone (re-parented): no build goes on without it


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _build(e: Event, n: Need) -> Built:
    assert _worker is not None, "evidence worker not initialised"
    loop, local = _worker
    return loop.run_until_complete(local.build(e, n))
