"""What the API follows on `harclip.control`: `head` records go to the predictor's head holder,
`adapter` records to its adapter holder, `rules` records are kept for `GET /rules`, `watches`
records for `/watches` (the set a change builds on). Started and stopped by the app's lifespan."""

from __future__ import annotations

import asyncio
import logging

import orjson

from harclip.adapt.holder import AdapterHolder
from harclip.config import Settings
from harclip.control import (
    ADAPTER_KEY,
    HEAD_KEY,
    RULES_KEY,
    WATCHES_KEY,
    ControlFollower,
    HeadHolder,
)
from harclip.errors import Unavailable
from harclip.rules import Rules, RulesError
from harclip.watches.holder import WatchHolder

log = logging.getLogger(__name__)


class Control:
    """The control-topic follower of one API process, the newest rules and watches it read."""

    def __init__(
        self,
        settings: Settings,
        heads: HeadHolder,
        watches: WatchHolder,
        adapters: AdapterHolder | None = None,
    ) -> None:
        self._settings = settings
        self._heads = heads
        # the newest valid `rules` record on harclip.control: (rules, updated_at ms)
        self.rules: tuple[Rules, int] | None = None
        self.watches = watches
        self.watches_lock = asyncio.Lock()  # one change of the watches at a time
        handlers = {
            HEAD_KEY: heads.offer_raw,
            RULES_KEY: self._on_rules,
            WATCHES_KEY: watches.offer_raw,
        }
        if adapters is not None:
            handlers[ADAPTER_KEY] = adapters.offer_raw
        self._follower = ControlFollower(settings.kafka, handlers)
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Catch up, then follow in a task (when `api.follow_control`)."""
        if self._settings.api.follow_control:
            await self._catch_up()
            self._task = asyncio.create_task(self._follower.run(self._stop), name="api-control")

    async def _catch_up(self) -> None:
        """Serve the newest head from the first answer on; without Kafka, the bundle's head
        (predict needs no Kafka) until the follower reaches it."""
        try:
            await self._follower.catch_up(timeout_s=self._settings.api.control_catch_up_s)
        except Unavailable as e:
            log.warning("serving head v%d of the bundle for now: %s", self._heads.head.version, e)

    def _on_rules(self, raw: bytes) -> None:
        """A `rules` record: kept if valid (as the events app does), else refused and logged."""
        try:
            self.rules = Rules.from_control(raw), int(orjson.loads(raw).get("updated_at", 0))
        except (RulesError, TypeError, ValueError) as e:  # e.g. updated_at not a number
            log.warning("rules record refused: %s", e)

    async def close(self) -> None:
        self._stop.set()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
        await self._follower.stop()
