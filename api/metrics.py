"""Prometheus metrics of the API (`harclip_http_*`, `harclip_api_*`), one registry per app so
several apps in one process (tests) do not collide."""

from __future__ import annotations

import time
from collections import deque

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from harclip.control import ControlMetrics

# Any method name reaches the app (a 405 answers it): label only the known ones, so a client
# cannot grow the metrics by sending made-up methods.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class ApiMetrics:
    """Every metric the API exports."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.control = ControlMetrics(r)
        self.requests = Counter(
            "harclip_http_requests",
            "HTTP requests by route and status",
            ["method", "route", "status"],
            registry=r,
        )
        self.duration = Histogram(
            "harclip_http_request_duration_seconds",
            "HTTP request duration, seconds",
            ["method", "route"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.in_flight = Gauge(
            "harclip_http_requests_in_flight", "HTTP requests being served", registry=r
        )
        self.batch_size = Histogram(
            "harclip_api_batch_size",
            "images per engine batch of the API",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128),
            registry=r,
        )
        self.images = Counter("harclip_api_images", "images predicted by the API", registry=r)
        self.ws_clients = Gauge(
            "harclip_ws_clients", "open WebSocket connections", ["kind"], registry=r
        )
        self.ws_sent = Counter(
            "harclip_ws_messages_sent", "predictions sent to subscribers", registry=r
        )
        self.ws_dropped = Counter(
            "harclip_ws_messages_dropped", "predictions dropped for slow subscribers", registry=r
        )
        self.ingested = Counter(
            "harclip_api_frames_ingested", "frames published by /ws/ingest", registry=r
        )
        self.feedback = FeedbackMetrics(r)


_WINDOW = 100  # verdicts per (stream, label) in the rolling agreement
_MAX_SERIES = 1000  # (stream, label) pairs tracked; more are counted in the totals only


class FeedbackMetrics:
    """Online accuracy: operators' verdicts on served predictions per stream and served label
    (`harclip_feedback_verdicts_total`), and the agreement of the last 100 verdicts of each
    (`harclip_feedback_agreement`, 0..1). Labels are the served ones (the head's: bounded)."""

    def __init__(self, r: CollectorRegistry) -> None:
        self.verdicts = Counter(
            "harclip_feedback_verdicts", "operators' verdicts on served predictions",
            ["stream", "label", "verdict"], registry=r,
        )  # fmt: skip
        self.agreement = Gauge(
            "harclip_feedback_agreement",
            f"share of the last {_WINDOW} verdicts that found the served label correct",
            ["stream", "label"], registry=r,
        )  # fmt: skip
        self._recent: dict[tuple[str, str], deque[bool]] = {}

    def observe(self, stream: str, label: str | None, verdict: str) -> None:
        served = label or "none"
        key = (stream, served)
        if key not in self._recent and len(self._recent) >= _MAX_SERIES:
            key = ("other", "other")  # bounded series: beyond the cap, one pooled series
        self.verdicts.labels(key[0], key[1], verdict).inc()
        window = self._recent.setdefault(key, deque(maxlen=_WINDOW))
        window.append(verdict == "correct")
        self.agreement.labels(*key).set(sum(window) / len(window))


def _method_label(method: str) -> str:
    return method if method in _METHODS else "other"


class MetricsMiddleware:
    """Counts and times every HTTP request, labelled by route template (not the raw path) and by
    method (one of a fixed set, else "other")."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        start = time.perf_counter()

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        self.metrics.in_flight.inc()
        try:
            await self.app(scope, receive, send_status)
        finally:
            self.metrics.in_flight.dec()
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = _method_label(str(scope.get("method", "")))
            self.metrics.requests.labels(method, template, str(status)).inc()
            self.metrics.duration.labels(method, template).observe(time.perf_counter() - start)
