"""A light HTTP/1.1 load client for the API benches: keep-alive connections over asyncio streams,
request bodies encoded once (`multipart_request`), responses read by Content-Length.

The API benches load a server on the same 2 cores as the client; httpx encodes a multipart body
and builds a request per call in Python, which took a visible share of those cores (see
docs/benchmarks.md, "API"). In production the client runs elsewhere, so the bench spends as
little CPU as it can on its side: one `write` of prepared bytes and one parse of the status line
and headers per request.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from urllib.parse import urlsplit

BOUNDARY = "harclip-bench-7d1f0c"


def multipart_request(url: str, path: str, filename: str, data: bytes) -> bytes:
    """The complete bytes of `POST path` uploading `data` as field `files` (multipart)."""
    host = urlsplit(url).netloc
    body = (
        (
            f"--{BOUNDARY}\r\n"
            f'Content-Disposition: form-data; name="files"; filename="{filename}"\r\n'
            "Content-Type: image/jpeg\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{BOUNDARY}--\r\n".encode()
    )
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\n"
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    return head + body


class HttpError(Exception):
    """A response that was not 200, or not HTTP/1.1 with a Content-Length."""


class Connection:
    """One keep-alive connection; `send` one prepared request, read its whole response."""

    def __init__(
        self, url: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self._url = url
        self._reader = reader
        self._writer = writer

    @classmethod
    async def open(cls, url: str) -> Connection:
        parts = urlsplit(url)
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port or 80)
        return cls(url, reader, writer)

    async def send(self, request: bytes) -> bytes:
        """The body of the 200 answer to `request`; `HttpError` for any other status. A
        connection the server closed while idle (keep-alive timeout) is opened again, once."""
        try:
            status, body = await self._exchange(request)
        except (asyncio.IncompleteReadError, ConnectionError):
            await self.close()
            fresh = await Connection.open(self._url)
            self._reader, self._writer = fresh._reader, fresh._writer
            status, body = await self._exchange(request)
        if status != 200:
            raise HttpError(f"HTTP {status}: {body[:300]!r}")
        return body

    async def _exchange(self, request: bytes) -> tuple[int, bytes]:
        self._writer.write(request)
        head = await self._reader.readuntil(b"\r\n\r\n")
        status, length = parse_head(head)
        return status, await self._reader.readexactly(length)

    async def close(self) -> None:
        self._writer.close()
        with contextlib.suppress(OSError):
            await self._writer.wait_closed()


def parse_head(head: bytes) -> tuple[int, int]:
    """(status, Content-Length) of a response head (status line and headers, CRLF-separated)."""
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
        raise HttpError(f"not an HTTP/1.x status line: {lines[0][:100]!r}")
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(parts[1]), int(value.strip())
    raise HttpError(f"HTTP {int(parts[1])} without Content-Length (chunked is not supported)")


def check_predictions(body: bytes) -> dict[str, object]:
    """The decoded `/predict/image` answer; `HttpError` unless it holds one result."""
    doc = json.loads(body)
    if not isinstance(doc, dict) or len(doc.get("results") or ()) != 1:
        raise HttpError(f"unexpected answer: {body[:300]!r}")
    return doc
