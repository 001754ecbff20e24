"""The `alerts` agent: every alert and watch event of harclip.events is handed to the webhooks
(which deliver it in the background to the URLs it goes to, stream/webhooks.py); the evidence
step's copy of one is handed over too (`evidence`), for a webhook that waits for its thumbnail."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from harclip.messages import Event
from stream.agents import parse_events
from stream.continuity import Record

_DELIVERED = ("alert", "watch.start", "watch.end")  # the webhooks route them (stream/webhooks.py)


class Offer(Protocol):
    def offer(self, alert: Event) -> None: ...

    def evidence(self, alert: Event) -> None: ...


class AlertsAgent:
    name = "alerts"

    def __init__(self, webhooks: Offer) -> None:
        self.webhooks = webhooks

    async def apply(self, records: Sequence[Record]) -> None:
        for e in parse_events(records):
            if e.type not in _DELIVERED:
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
