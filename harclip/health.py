"""The HTTP side of a process without a web framework (the worker, the events app): `/health`
(process up), `/ready` (what its `not_ready()` check says) and Prometheus `/metrics`, on a plain
asyncio server (no web framework needed for three GET routes)."""

from __future__ import annotations

import asyncio
import errno
import logging
from collections.abc import Callable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from harclip.errors import ConfigError

log = logging.getLogger(__name__)

ReadyCheck = Callable[[], list[str]]  # what is not ready yet; empty when ready
_READ_TIMEOUT_S = 5.0


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
            self._server = await asyncio.start_server(self._serve, self._host, self.port)
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

    def route(self, path: str) -> tuple[int, str, bytes]:
        """(status, content type, body) for a GET of `path`."""
        if path == "/health":
            return 200, "text/plain", b"ok\n"
        if path == "/ready":
            missing = self._not_ready()
            if missing:
                return 503, "text/plain", ("not ready: " + "; ".join(missing) + "\n").encode()
            return 200, "text/plain", b"ready\n"
        if path == "/metrics":
            return 200, CONTENT_TYPE_LATEST, generate_latest(self._registry)
        return 404, "text/plain", b"not found\n"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), _READ_TIMEOUT_S)
            method, path, *_ = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ")
            if method not in ("GET", "HEAD"):
                status, ctype, body = 405, "text/plain", b"method not allowed\n"
            else:
                status, ctype, body = self.route(path.split("?", 1)[0])
            reason = {200: "OK", 404: "Not Found", 405: "Method Not Allowed"}.get(
                status, "Service Unavailable"
            )
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
