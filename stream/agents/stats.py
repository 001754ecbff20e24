"""The `stats` agent: segment events of harclip.events into the windowed statistics tables
(stream/stats.py), and the timer that writes the changed streams' statistics to Redis."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from harclip.messages import Event, StreamStats, now_ms
from stream.agents import parse_events
from stream.continuity import Record

FLUSH_S = 1.0  # statistics to Redis at most this often, seconds


class Windows(Protocol):
    """What the agent uses of `stream.stats.Stats`."""

    dirty: set[str]

    def apply(self, e: Event) -> bool: ...

    def snapshot(self, stream_id: str, wall_ms: int) -> StreamStats | None: ...


class StatsAgent:
    name = "stats"

    def __init__(
        self, stats: Windows, write: Callable[[Sequence[StreamStats]], Awaitable[bool]]
    ) -> None:
        self.stats = stats
        self._write = write  # True once written; False: try again at the next flush

    async def apply(self, records: Sequence[Record]) -> None:
        for e in parse_events(records):
            if e.evidence is not None:
                continue  # the evidence step's copy of an event already counted
            self.stats.apply(e)  # the tables are written here, in the record's partition

    def sent(self) -> list[Awaitable[Any]]:
        return []

    async def write(self, focus: Callable[[Record], None]) -> None:
        return None  # the tables were written in `apply`

    def drop(self) -> None:
        return None

    async def flush(self) -> None:
        """Write the statistics of the streams with new events (every `FLUSH_S`)."""
        if not self.stats.dirty:
            return
        dirty, self.stats.dirty = self.stats.dirty, set()
        wall = now_ms()
        docs = []
        for sid in dirty:  # a stream's first snapshot reads its hour: let the agents run between
            if (d := self.stats.snapshot(sid, wall)) is not None:
                docs.append(d)
            await asyncio.sleep(0)
        if not await self._write(docs):
            self.stats.dirty |= dirty  # next time
