"""The `alerts` agent: every alert of harclip.events is handed to the webhooks (which deliver
it in the background, stream/webhooks.py); the evidence step's copy of an alert is handed over
too (`evidence`), for a webhook that waits for the alert's thumbnail."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from harclip.messages import Event
from stream.agents import parse_events
from stream.continuity import Record


class Offer(Protocol):
    def offer(self, alert: Event) -> None: ...

    def evidence(self, alert: Event) -> None: ...


class AlertsAgent:
    name = "alerts"

    def __init__(self, webhooks: Offer) -> None:
        self.webhooks = webhooks

    async def apply(self, records: Sequence[Record]) -> None:
        for e in parse_events(records):
            if e.type != "alert":
                continue
            if e.evidence is None:
                self.webhooks.offer(e)
            else:  # the evidence step's copy: delivered once, as the alert
                self.webhooks.evidence(e)

    def sent(self) -> list[Awaitable[Any]]:
        return []

    async def write(self, focus: Callable[[Record], None]) -> None:
        return None  # handed over in `apply`

    def drop(self) -> None:
        return None
