"""The `outputs` agent: events of harclip.events, in batches, to Elasticsearch and Redis
(stream/outputs.py). Its checkpoint acknowledges a batch's records, and saves its positions,
only after both sinks took the batch; a revoked partition's batch is dropped, so the next owner
writes those events again (writes are idempotent)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from harclip.messages import Event
from stream.agents import parse_events
from stream.continuity import Record


class Sink(Protocol):
    async def write(self, events: Sequence[Event]) -> None: ...


class OutputsAgent:
    name = "outputs"

    def __init__(self, sink: Sink) -> None:
        self.sink = sink
        self.pending: list[Event] = []

    async def apply(self, records: Sequence[Record]) -> None:
        self.pending += parse_events(records)

    def sent(self) -> list[Awaitable[Any]]:
        return []

    async def write(self, focus: Callable[[Record], None]) -> None:
        events, self.pending = self.pending, []
        await self.sink.write(events)

    def drop(self) -> None:
        self.pending = []
