"""Browser-origin safety for every HTTP request and WebSocket handshake: the `Host` header must
name this API (`HARCLIP_API__ALLOWED_HOSTS`, so a DNS-rebinding page whose name now points at
127.0.0.1 is refused with 400 `invalid_host`), and a request that carries an `Origin` header
(every browser-made WebSocket handshake and cross-site request does) must come from this API's
own pages or from `HARCLIP_API__CORS_ORIGINS`, else 403 `origin_not_allowed`. Programs that send
no `Origin` (the Python client, curl) are not affected by the second check."""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from api.errors import error_response
from harclip.wire import ApiError

_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}
_WILDCARD_BINDS = frozenset({"", "0.0.0.0", "::", "[::]"})


def allowed_hosts(configured: Iterable[str], bind_host: str) -> tuple[str, ...]:
    """The host names served: the configured ones, and the address the API binds to when it is
    one address (not 0.0.0.0 or ::)."""
    hosts = [_normal_host(h) for h in configured]
    if bind_host.strip() not in _WILDCARD_BINDS:
        hosts.append(_normal_host(bind_host))
    return tuple(dict.fromkeys(hosts))


def _normal_host(host: str) -> str:
    return host.strip().lower().rstrip(".").removeprefix("[").removesuffix("]")


def split_host(value: str) -> tuple[str, int | None] | None:
    """A Host header (`name`, `name:port`, `[v6]:port`) as (lower-case name, port), or None."""
    try:
        parts = urlsplit(f"//{value.strip()}")
        return _normal_host(parts.hostname or ""), parts.port
    except ValueError:
        return None


def host_allowed(value: str | None, hosts: Iterable[str]) -> bool:
    """Whether a Host header names one of `hosts` ('*' any, '*.example.com' any subdomain)."""
    parsed = split_host(value) if value else None
    if parsed is None or not parsed[0]:
        return False
    name = parsed[0]
    return any(h in ("*", name) or (h.startswith("*.") and name.endswith(h[1:])) for h in hosts)


def origin_allowed(origin: str, host_header: str | None, origins: Iterable[str]) -> bool:
    """Whether a page of `origin` may call: one of `origins` ('*' any), or the API's own origin
    (the same host and port as the request's Host header)."""
    listed = {o.strip().rstrip("/").lower() for o in origins}
    origin = origin.strip().rstrip("/").lower()
    if "*" in listed or origin in listed:
        return True
    try:
        page = urlsplit(origin)
        port = page.port or _DEFAULT_PORTS.get(page.scheme)
    except ValueError:
        return False
    target = split_host(host_header) if host_header else None
    if target is None or page.scheme not in _DEFAULT_PORTS or not page.hostname:
        return False
    name, target_port = target
    return _normal_host(page.hostname) == name and port == (
        target_port or _DEFAULT_PORTS[page.scheme]
    )


class BrowserGuardMiddleware:
    """Refuse requests and WebSocket handshakes for another host name or from a foreign page."""

    def __init__(self, app: ASGIApp, hosts: Iterable[str], origins: Iterable[str]) -> None:
        self.app = app
        self.hosts = tuple(hosts)
        self.origins = tuple(origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        host = headers.get("host")
        origin = headers.get("origin")
        if not host_allowed(host, self.hosts):
            named = (host or "")[:100]
            err = ApiError(400, "invalid_host", f"this API does not serve the host {named!r}")
        elif origin is not None and not origin_allowed(origin, host, self.origins):
            err = ApiError(
                403, "origin_not_allowed",
                f"pages of {origin[:100]!r} may not call this API (HARCLIP_API__CORS_ORIGINS)",
            )  # fmt: skip
        else:
            await self.app(scope, receive, send)
            return
        await refuse(err, scope, receive, send)


async def refuse(err: ApiError, scope: Scope, receive: Receive, send: Send) -> None:
    """Answer `err` to a request, or to a WebSocket handshake as an HTTP denial (or a close
    with 1008 where the server cannot send one)."""
    if scope["type"] == "websocket" and "websocket.http.response" not in scope.get(
        "extensions", {}
    ):
        await receive()  # websocket.connect
        await send({"type": "websocket.close", "code": 1008, "reason": err.message[:120]})
        return
    await error_response(err)(scope, receive, send)
