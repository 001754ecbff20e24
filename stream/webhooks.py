"""Alert webhooks: every alert is POSTed (Event JSON plus `snapshot_url` and `clip_url`, the
API's links to its evidence under `api.public_url`) to each configured URL by a background
task per URL (its own bounded queue, in order), so the agent never waits and a slow or dead URL
never delays the others. The URL guard of `harclip.urlguard` applies to every delivery
(only public addresses; the request goes to the checked address). Timeouts, 429, 5xx and
connection errors are retried with exponential backoff; other statuses and refused URLs are not.
A full queue drops its oldest alert. Every failure is counted.

With `webhook_thumbnail`, a body also carries the alert's thumbnail inline (`thumbnail_jpeg`,
base64 JPEG, at most `webhook_thumbnail_max_bytes`): the delivery waits until the evidence step's
copy of the alert arrives (handed over by the alerts agent) or `webhook_thumbnail_wait_s` after
the alert was emitted (wall clock), then reads the thumbnail from the object store; without one
the body says why in `thumbnail_omitted` (`pending`: not written in time, `too_large`,
`unavailable`: the store did not answer, or the evidence's `missing` reason)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Protocol
from urllib.parse import quote

import httpx

from harclip.config import ObjectStoreSettings, StreamSettings
from harclip.errors import HarclipError
from harclip.messages import Event, Evidence
from harclip.retry import Backoff, retry_async
from harclip.urlguard import UrlNotAllowed, check_url, pinned_request, resolve_checked
from stream.metrics import StreamMetrics

log = logging.getLogger(__name__)

_FIRST_S, _LONGEST_S = 0.5, 10.0  # first and longest pause between tries, seconds
MAX_WATCH_URLS = 1000  # distinct watch webhook URLs delivered to (each a queue and a task)


class _Failed(Exception):
    """A delivery that did not succeed; `_Transient` ones are tried again."""


class _Transient(_Failed):
    """A timeout, a connection or DNS failure, 429 or 5xx."""


_SEEN = 1000  # evidence copies of alerts kept for deliveries that wait for their thumbnail


class Thumbnails(Protocol):
    """Reads an evidence object (`harclip.io.objects.ObjectStore` in the app)."""

    async def start(self) -> None: ...

    async def read(self, key: str) -> bytes | None: ...

    async def close(self) -> None: ...


class StoreThumbnails:
    """`Thumbnails` from the object store (connects on first use when it was down at start)."""

    def __init__(self, settings: ObjectStoreSettings) -> None:
        from harclip.io.objects import ObjectStore

        self._store = ObjectStore(settings)
        self._started = False

    async def start(self) -> None:
        try:
            await self._store.start()
            self._started = True
        except HarclipError as e:  # deliveries say `unavailable` until it answers
            log.warning("webhook thumbnails: object store: %s", e)

    async def read(self, key: str) -> bytes | None:
        if not self._started:
            await self._store.start()
            self._started = True
        found = await self._store.get(key)
        return None if found is None else found.data

    async def close(self) -> None:
        await self._store.close()


def alert_body(
    alert: Event, public_url: str, *, thumbnail: bytes | None = None, omitted: str | None = None
) -> bytes:
    """The POSTed JSON: the Event plus `snapshot_url` and `clip_url` (`<public_url>/events/<id>/
    snapshot` and `/clip`; they answer 404 `pending` until the evidence is written), and with
    inline thumbnails `thumbnail_jpeg` (base64) or `thumbnail_omitted` (why not)."""
    body = json.loads(alert.to_json())
    base = f"{public_url.rstrip('/')}/events/{quote(alert.event_id, safe='')}"
    body["snapshot_url"] = f"{base}/snapshot"
    body["clip_url"] = f"{base}/clip"
    if thumbnail is not None:
        body["thumbnail_jpeg"] = base64.b64encode(thumbnail).decode()
    elif omitted is not None:
        body["thumbnail_omitted"] = omitted
    return json.dumps(body, separators=(",", ":")).encode()


class Webhooks:
    """Per URL, a bounded queue of alerts and one task that delivers them in order.

    The configured URLs get every alert and every `watch.start`; a watch's own URLs
    (`watch_urls(name)`, its spec's `webhooks`) get its `watch.start` and `watch.end`, through a
    queue and task opened at its first delivery (at most `MAX_WATCH_URLS` of them)."""

    def __init__(
        self, s: StreamSettings, metrics: StreamMetrics, public_url: str = "http://127.0.0.1:8000",
        thumbnails: Thumbnails | None = None,
        watch_urls: Callable[[str | None], list[str]] = lambda name: [],
    ) -> None:  # fmt: skip
        self._s = s
        self._m = metrics
        self._public_url = public_url  # the API's, for the evidence links
        self._thumbs = thumbnails if s.webhook_thumbnail else None
        self._seen: OrderedDict[str, Evidence] = OrderedDict()  # event id -> its evidence
        self._arrival = asyncio.Event()  # set (and replaced) whenever a copy arrives
        self._queues: dict[str, asyncio.Queue[Event]] = {
            url: asyncio.Queue(maxsize=s.webhook_queue) for url in s.webhooks
        }
        self._watch_urls = watch_urls
        self._client: httpx.AsyncClient | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._started = False

    @property
    def enabled(self) -> bool:
        return bool(self._s.webhooks)

    async def start(self) -> None:
        self._started = True
        if not self.enabled:
            return
        if self._thumbs is not None:
            await self._thumbs.start()
        self._client = self._new_client()
        self._tasks = [
            asyncio.create_task(self._run(url, q), name=f"webhook-{i}")
            for i, (url, q) in enumerate(self._queues.items())
        ]

    def _new_client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            follow_redirects=False, trust_env=False,
            timeout=httpx.Timeout(self._s.webhook_timeout_s),
            headers={"User-Agent": "harclip-stream", "Content-Type": "application/json"},
        )  # fmt: skip

    def _queue(self, url: str) -> asyncio.Queue[Event] | None:
        """The queue of a watch's URL, opened (with its task) at its first delivery."""
        q = self._queues.get(url)
        if q is not None or not self._started:
            return q
        if len(self._queues) >= len(self._s.webhooks) + MAX_WATCH_URLS:
            return None
        if self._client is None:
            self._client = self._new_client()
        q = self._queues[url] = asyncio.Queue(maxsize=self._s.webhook_queue)
        self._tasks.append(
            asyncio.create_task(self._run(url, q), name=f"webhook-{len(self._tasks)}")
        )
        return q

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._client is not None:
            await self._client.aclose()
        if self._thumbs is not None:
            await self._thumbs.close()

    def offer(self, alert: Event) -> None:
        """Queue `alert` for the URLs it goes to; never waits (a full queue drops its oldest
        alert)."""
        urls = list(self._s.webhooks) if alert.type in ("alert", "watch.start") else []
        if alert.type in ("watch.start", "watch.end"):
            urls += [u for u in self._watch_urls(alert.watch) if u not in urls]
        for url in urls:
            q = self._queue(url)
            if q is None:
                self._m.alerts_failed.labels("too_many_urls").inc()
                continue
            if q.full():
                q.get_nowait()
                self._m.alerts_failed.labels("queue_full").inc()
            q.put_nowait(alert)

    def evidence(self, alert: Event) -> None:
        """The evidence step's copy of an alert: its thumbnail for deliveries that wait."""
        if self._thumbs is None or alert.evidence is None:
            return
        self._seen[alert.event_id] = alert.evidence
        while len(self._seen) > _SEEN:
            self._seen.popitem(last=False)
        self._arrival.set()
        self._arrival = asyncio.Event()

    async def body(self, alert: Event) -> bytes:
        """What is POSTed for `alert` (waiting for its thumbnail when inline thumbnails are on)."""
        if self._thumbs is None:
            return alert_body(alert, self._public_url)
        ev = await self._wait_evidence(alert)
        if ev is None:
            return alert_body(alert, self._public_url, omitted="pending")
        if ev.thumbnail is None:
            return alert_body(alert, self._public_url, omitted=ev.missing or "pending")
        try:
            data = await self._thumbs.read(ev.thumbnail)
        except HarclipError as e:
            log.warning("webhook thumbnail of alert %s: %s", alert.event_id, e)
            data = None
        if data is None:
            return alert_body(alert, self._public_url, omitted="unavailable")
        if len(data) > self._s.webhook_thumbnail_max_bytes:
            return alert_body(alert, self._public_url, omitted="too_large")
        return alert_body(alert, self._public_url, thumbnail=data)

    async def _wait_evidence(self, alert: Event) -> Evidence | None:
        due = (alert.emitted_at or 0) / 1000 + self._s.webhook_thumbnail_wait_s
        while (ev := self._seen.get(alert.event_id)) is None:
            left = due - time.time()
            if left <= 0:
                return None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrival.wait(), left)
        return ev

    async def _run(self, url: str, queue: asyncio.Queue[Event]) -> None:
        while True:
            alert = await queue.get()
            await self._deliver(url, await self.body(alert), alert)

    async def _deliver(self, url: str, body: bytes, alert: Event) -> None:
        policy = Backoff(_FIRST_S, _LONGEST_S, retries=self._s.webhook_retries)
        retry_on = lambda e: isinstance(e, _Transient)  # noqa: E731
        try:
            await retry_async(lambda: self._post(url, body), policy, retry_on=retry_on)
        except UrlNotAllowed as e:
            self._fail("refused", url, alert, str(e))
        except _Failed as e:
            self._fail("failed", url, alert, str(e))
        else:
            self._m.alerts_delivered.inc()

    async def _post(self, url: str, body: bytes) -> None:
        """One try: returns on 2xx; `UrlNotAllowed`, `_Transient` or `_Failed` otherwise."""
        assert self._client is not None
        try:
            target = check_url(url)
            ip = await resolve_checked(target, allow_loopback=self._s.webhook_allow_loopback)
            request_url, headers, extensions = pinned_request(target, ip)
            response = await self._client.post(
                request_url, content=body, headers=headers, extensions=extensions
            )
        except UrlNotAllowed:
            raise
        except (httpx.HTTPError, HarclipError) as e:  # timeouts, connection, DNS
            raise _Transient(f"{type(e).__name__}: {e}") from e
        status = response.status_code
        if 200 <= status < 300:
            return
        if status == 429 or status >= 500:
            raise _Transient(f"HTTP {status}")
        raise _Failed(f"HTTP {status}")

    def _fail(self, kind: str, url: str, alert: Event, reason: str) -> None:
        self._m.alerts_failed.labels(kind).inc()
        log.warning("webhook %s: alert %s (%s on %s) not delivered: %s",
                    url, alert.event_id, alert.rule, alert.stream_id, reason)  # fmt: skip
