"""Request limits: the body-size cap (413 as soon as the declared or streamed size passes it,
before the body is read in full) and the checks on image bytes (format sniffed from the bytes,
never from the declared type; pixel limit 422) done before any decoding."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from harclip.errors import DecodeError
from harclip.model.imageio import ImageHeader, check_header, sniff_format
from harclip.wire import ApiError

_SUPPORTED = "JPEG, PNG, WebP, BMP or GIF"


def check_image(data: bytes, max_pixels: int, name: str = "image") -> ImageHeader:
    """The header of an encoded image; `ApiError` 415 when the bytes are not a supported image
    whatever their declared type, 422 when too many pixels or truncated."""
    if not data:
        raise ApiError(422, "invalid_image", f"{name}: empty (0 bytes)")
    if sniff_format(data) is None:
        raise ApiError(415, "unsupported_media_type", f"{name}: not a {_SUPPORTED} image")
    try:
        return check_header(data, max_pixels=max_pixels)
    except DecodeError as e:
        code = "image_too_large" if "too large" in str(e) else "invalid_image"
        raise ApiError(422, code, f"{name}: {e}") from None


_DRAIN_FACTOR = 4  # a refused body is read and discarded up to 4x the limit, then the socket closes


class _TooLarge(Exception):
    pass


class BodyLimitMiddleware:
    """Refuse HTTP request bodies over `max_bytes` with 413: at once when Content-Length says so,
    otherwise when the streamed bytes pass the limit (chunked uploads)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self._drain(receive)
            await self._refuse(send)
            return
        seen = 0
        started = False
        tripped = False  # the body passed the limit: whatever the app answers becomes a 413

        async def limited_receive() -> Message:
            nonlocal seen, tripped
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    tripped = True
                    await self._drain(receive)
                    raise _TooLarge
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if tripped and not started:
                started = True
                await self._refuse(send)
            if tripped:
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except _TooLarge:
            if not started:
                await self._refuse(send)

    async def _drain(self, receive: Receive) -> None:
        """Read and discard the rest of a refused body (up to a bound, nothing kept) before
        answering, so a client that is still sending reads the 413 instead of a reset."""
        left = _DRAIN_FACTOR * self.max_bytes
        while left > 0:
            message = await receive()
            if message["type"] != "http.request" or not message.get("more_body", False):
                return
            left -= len(message.get("body", b""))

    async def _refuse(self, send: Send) -> None:
        too_large = f"request body exceeds {self.max_bytes:,} bytes"
        body = ApiError(413, "payload_too_large", too_large).body().to_json().encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _content_length(scope: Scope) -> int | None:
    for k, v in scope.get("headers", ()):
        if k == b"content-length":
            try:
                return int(v)
            except ValueError:
                return None
    return None
