"""Keyframe thumbnails: for every keyframe the Elasticsearch sink indexes, a ~160 px JPEG of the
frame (`harclip.thumbnail`) in the object store at `thumb_key(stream, captured_at, frame_id)`,
written BEFORE the document that references it (`thumbnail` in the prediction's `_source`), so
no document points to an object that does not exist. A replay writes the same key (idempotent).

Failures follow the worker's policy (`consumers.delivery`): the store not answering raises
`SinkUnavailable` (the Elasticsearch sink's flush is retried; thumbnails already written are not
written again); a thumbnail the store refuses for good refuses its frame (`SinkRefused` naming
it: dead-lettered, not indexed). A frame whose bytes cannot be made into a thumbnail (they were
decoded once already, so rarely) is indexed without one."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from harclip.config import ObjectStoreSettings
from harclip.errors import DecodeError, SinkRefused
from harclip.io.keys import thumb_key
from harclip.io.objects import ObjectStore
from harclip.io.s3put import MAX_BYTES, SignedPut
from harclip.thumbnail import thumbnails_jpeg

log = logging.getLogger(__name__)

_CONCURRENCY = 8  # thumbnails written at once (puts in the loop)


@dataclass(frozen=True, slots=True)
class Source:
    """A keyframe to make a thumbnail of: where it goes and the frame as captured (encoded)."""

    frame_id: str
    key: str
    data: bytes


def source(stream_id: str, captured_at: int, frame_id: str, data: bytes) -> Source:
    return Source(frame_id, thumb_key(stream_id, captured_at, frame_id), data)


class Thumbnails:
    """Writes keyframe thumbnails to one bucket; `start()` connects, `stop()` closes. `written`
    remembers the keys of the current batch so a retried flush does not write them again."""

    def __init__(self, s: ObjectStoreSettings, max_pixels: int) -> None:
        self._s = s
        self._max_pixels = max_pixels
        self._store: ObjectStore | None = None
        self._put: SignedPut | None = None  # the lean PutObject (path-style stores)
        self.written: dict[str, str | None] = {}  # frame_id -> key (None: no thumbnail)

    async def start(self) -> None:
        store = ObjectStore(self._s)
        await store.start()  # SinkUnavailable while it does not answer
        self._store = store
        if SignedPut.usable(self._s):
            self._put = SignedPut(self._s)
            await self._put.start()

    async def write(self, sources: list[Source]) -> dict[str, str]:
        """Write the thumbnails of `sources` not written yet (all made in one thread hand-off,
        then stored `_CONCURRENCY` at a time); frame_id -> reason for those the store refused
        for good (`SinkUnavailable` propagates: retry the flush)."""
        assert self._store is not None, "start() first"
        todo = [src for src in sources if src.frame_id not in self.written]
        if not todo:
            return {}
        jpegs = await asyncio.to_thread(
            thumbnails_jpeg, [src.data for src in todo], max_pixels=self._max_pixels
        )
        limit = asyncio.Semaphore(_CONCURRENCY)
        refused: dict[str, str] = {}

        async def one(src: Source, jpeg: bytes) -> None:
            async with limit:
                reason = await self._store_one(src, jpeg)
            if reason is not None:
                refused[src.frame_id] = reason

        puts = []
        for src, jpeg in zip(todo, jpegs, strict=True):
            if isinstance(jpeg, DecodeError):
                log.warning("no thumbnail for frame %s: %s", src.frame_id, jpeg)
                self.written[src.frame_id] = None
            else:
                puts.append(one(src, jpeg))
        await asyncio.gather(*puts)
        return refused

    async def _store_one(self, src: Source, jpeg: bytes) -> str | None:
        """Store one thumbnail; why the store refused it, else None."""
        assert self._store is not None
        put = self._put.put if self._put is not None and len(jpeg) <= MAX_BYTES else self._store.put
        try:
            await put(src.key, jpeg, "image/jpeg")
        except SinkRefused as e:
            return f"object store refused its thumbnail: {e}"
        self.written[src.frame_id] = src.key
        return None

    def clear(self) -> None:
        self.written = {}

    async def stop(self) -> None:
        if self._put is not None:
            await self._put.close()
        if self._store is not None:
            await self._store.close()
