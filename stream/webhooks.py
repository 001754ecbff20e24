"""Alert webhooks: every alert is POSTed (Event JSON) to each configured URL by a background
task, so the agent never waits. The URL guard of `harclip.urlguard` applies to every delivery
(only public addresses; the request goes to the checked address). Timeouts, 429, 5xx and
connection errors are retried with exponential backoff; other statuses and refused URLs are not.
A full queue drops its oldest alert. Every failure is counted."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import httpx

from harclip.config import StreamSettings
from harclip.errors import HarclipError
from harclip.events import Event
from harclip.urlguard import UrlNotAllowed, check_url, pinned_request, resolve_checked
from stream.metrics import StreamMetrics

log = logging.getLogger(__name__)

_BACKOFF_S = (0.5, 10.0)  # first and longest pause between tries, seconds


class Webhooks:
    """A bounded queue of alerts and one task that delivers them."""

    def __init__(self, s: StreamSettings, metrics: StreamMetrics) -> None:
        self._s = s
        self._m = metrics
        self._queue: asyncio.Queue[Event] = asyncio.Queue(maxsize=s.webhook_queue)
        self._client: httpx.AsyncClient | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def enabled(self) -> bool:
        return bool(self._s.webhooks)

    async def start(self) -> None:
        if not self.enabled:
            return
        self._client = httpx.AsyncClient(
            follow_redirects=False, trust_env=False,
            timeout=httpx.Timeout(self._s.webhook_timeout_s),
            headers={"User-Agent": "harclip-stream", "Content-Type": "application/json"},
        )  # fmt: skip
        self._task = asyncio.create_task(self._run(), name="webhooks")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._client is not None:
            await self._client.aclose()

    def offer(self, alert: Event) -> None:
        """Queue `alert` for delivery; never waits (a full queue drops its oldest alert)."""
        if not self.enabled:
            return
        if self._queue.full():
            self._queue.get_nowait()
            self._m.alerts_failed.labels("queue_full").inc(len(self._s.webhooks))
        self._queue.put_nowait(alert)

    async def _run(self) -> None:
        while True:
            alert = await self._queue.get()
            body = alert.to_json()
            await asyncio.gather(*(self._deliver(url, body, alert) for url in self._s.webhooks))

    async def _deliver(self, url: str, body: bytes, alert: Event) -> None:
        assert self._client is not None
        pause = _BACKOFF_S[0]
        reason = ""
        for attempt in range(self._s.webhook_retries + 1):
            if attempt:
                await asyncio.sleep(pause)
                pause = min(_BACKOFF_S[1], pause * 2)
            try:
                target = check_url(url)
                ip = await resolve_checked(target, allow_loopback=self._s.webhook_allow_loopback)
                request_url, headers, extensions = pinned_request(target, ip)
                response = await self._client.post(
                    request_url, content=body, headers=headers, extensions=extensions
                )
            except UrlNotAllowed as e:
                self._fail("refused", url, alert, str(e))
                return
            except (httpx.HTTPError, HarclipError) as e:  # timeouts, connection, DNS
                reason = f"{type(e).__name__}: {e}"
                continue
            if 200 <= response.status_code < 300:
                self._m.alerts_delivered.inc()
                return
            reason = f"HTTP {response.status_code}"
            if response.status_code != 429 and response.status_code < 500:
                break
        self._fail("failed", url, alert, reason)

    def _fail(self, kind: str, url: str, alert: Event, reason: str) -> None:
        self._m.alerts_failed.labels(kind).inc()
        log.warning("webhook %s: alert %s (%s on %s) not delivered: %s",
                    url, alert.event_id, alert.rule, alert.stream_id, reason)  # fmt: skip
