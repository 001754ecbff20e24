"""Helpers of the UI's tests: the running system (API, worker, events app as child processes) the
UI is pointed at, ingesting and playing photos on it, and the scene of ACTS (two segments)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr

from harclip.client import Client, NotFound, ServerError
from harclip.config import Settings
from harclip.io import search
from harclip.io.es import make_es
from harclip.io.indices import ensure_templates
from harclip.io.keys import evidence_keys
from harclip.io.objects import ObjectStore
from harclip.messages import Event, Evidence, event_id
from tests.support.api import ADMIN_KEY
from tests.support.processes import wait_for


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

    def ui_settings(self) -> Settings:
        """`settings` with the UI pointed at this system (with the admin key)."""
        ui = self.settings.ui.model_copy(update={
            "api_url": self.api_url, "api_key": SecretStr(ADMIN_KEY),
            "worker_metrics_url": self.worker_metrics_url,
            "events_metrics_url": self.events_metrics_url})  # fmt: skip
        return self.settings.model_copy(update={"ui": ui})

    def ui_env(self) -> dict[str, str]:
        """The HARCLIP_UI__* variables of `ui_settings` (for a UI process or a page test)."""
        return {
            k: v for k, v in self.ui_settings().to_env().items() if k.startswith("HARCLIP_UI__")
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


ACTS = "ui-acts"  # a stream whose view changes twice: segments and events


def act(system: System, seeded: list[str]) -> None:
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
    """Delete what `seed_evidence` put for `stream`."""
    store = ObjectStore(s.objects)
    try:
        await store.start()
        await store.delete([o.key for o in await store.list(f"evidence/{stream}/")])
    finally:
        await store.close()
