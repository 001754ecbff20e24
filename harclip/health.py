"""The HTTP side of a process without a web framework (the worker, the events app): `/health`
(process up), `/ready` (what its `not_ready()` check says) and Prometheus `/metrics`, on a plain
asyncio server (no web framework needed for three GET routes).

It answers only what a probe or a scraper needs: a request head over 16 KiB gets 431, a Host
that could be an attacker's DNS name (a dotted public name: DNS rebinding from a browser) gets
421, and `/ready` names what is not ready (broker addresses and the like) to loopback clients
only; others get the count."""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import logging
from collections.abc import Callable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from harclip.errors import ConfigError

log = logging.getLogger(__name__)

ReadyCheck = Callable[[], list[str]]  # what is not ready yet; empty when ready
_READ_TIMEOUT_S = 5.0
_MAX_HEAD = 16_384  # bytes of a request head
# Host names no public DNS can hand an attacker (for DNS rebinding): besides IP literals and
# single-label names (`localhost`, `worker`, a pod's hostname), these suffixes.
_INTERNAL_SUFFIXES = (".local", ".internal", ".localhost", ".svc", ".lan", ".home.arpa")
_REASONS = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 421: "Misdirected Request",
            431: "Request Header Fields Too Large", 503: "Service Unavailable"}  # fmt: skip


def host_allowed(host: str | None) -> bool:
    """Whether a request's Host header (None: absent) may reach the routes: an IP literal, a
    single-label name, or a name under an internal suffix, with any port."""
    if host is None:
        return True
    name = host.strip().lower()
    if name.startswith("["):  # [v6]:port
        name = name[1:].split("]", 1)[0]
    elif name.count(":") == 1:
        name = name.split(":", 1)[0]
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        pass
    name = name.rstrip(".")
    return bool(name) and ("." not in name or name.endswith(_INTERNAL_SUFFIXES))


class HealthServer:
    """Serve /health, /ready, /metrics on host:port (port 0: pick a free one, see `.port`)."""

    def __init__(
        self,
        host: str,
        port: int,
        registry: CollectorRegistry,
        not_ready: ReadyCheck,
        *,
        how_to_move: str = "--metrics-port N (0: any free port) or HARCLIP_METRICS__PORT",
    ) -> None:
        self._how_to_move = how_to_move  # for the message when the port is taken
        self._host, self.port = host, port
        self._registry = registry
        self._not_ready = not_ready
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        """Listen; `ConfigError` naming the port and the flag when it is taken."""
        try:
            self._server = await asyncio.start_server(
                self._serve, self._host, self.port, limit=_MAX_HEAD
            )
        except OSError as e:
            if e.errno != errno.EADDRINUSE:
                raise
            raise ConfigError(
                f"port {self.port} on {self._host} (/health /ready /metrics) is already in use, "
                f"maybe by another process of the same kind: give each its own with "
                f"{self._how_to_move}"
            ) from None
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("health and metrics on http://%s:%d/{health,ready,metrics}", self._host, self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def route(self, path: str, *, detail: bool = True) -> tuple[int, str, bytes]:
        """(status, content type, body) for a GET of `path`; without `detail`, `/ready` says
        how many checks fail, not what they name."""
        if path == "/health":
            return 200, "text/plain", b"ok\n"
        if path == "/ready":
            missing = self._not_ready()
            if missing and detail:
                return 503, "text/plain", ("not ready: " + "; ".join(missing) + "\n").encode()
            if missing:
                return 503, "text/plain", f"not ready: {len(missing)} checks failing\n".encode()
            return 200, "text/plain", b"ready\n"
        if path == "/metrics":
            return 200, CONTENT_TYPE_LATEST, generate_latest(self._registry)
        return 404, "text/plain", b"not found\n"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            try:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), _READ_TIMEOUT_S)
            except asyncio.LimitOverrunError:
                method, (status, ctype, body) = "GET", (431, "text/plain", b"head too large\n")
            else:
                method, status, ctype, body = self._answer(head, writer.get_extra_info("peername"))
            reason = _REASONS.get(status, "Service Unavailable")
            writer.write(
                f"HTTP/1.1 {status} {reason}\r\nContent-Type: {ctype}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
            )
            if method != "HEAD":
                writer.write(body)
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, ValueError, ConnectionError):
            pass
        finally:
            writer.close()

    def _answer(self, head: bytes, peer: object) -> tuple[str, int, str, bytes]:
        """(method, status, content type, body) for a request head (`ValueError`: malformed)."""
        line, *fields = head.decode("latin-1").split("\r\n")
        method, path, *_ = line.split(" ")
        host = next(
            (v.strip() for k, _, v in (f.partition(":") for f in fields) if k.lower() == "host"),
            None,
        )
        if not host_allowed(host):
            return method, 421, "text/plain", b"unknown host\n"
        if method not in ("GET", "HEAD"):
            return method, 405, "text/plain", b"method not allowed\n"
        return method, *self.route(path.split("?", 1)[0], detail=_loopback(peer))


def _loopback(peer: object) -> bool:
    """Whether `peer` (a socket's peername) is this machine."""
    try:
        return ipaddress.ip_address(str(peer[0])).is_loopback  # type: ignore[index]
    except (TypeError, ValueError, IndexError):
        return False
