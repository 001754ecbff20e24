"""The client's errors. An error answer raises the `harclip.wire.ApiError` subclass of its HTTP
status, carrying the status, `code` and `message` the server sent (over HTTP or, with its status,
in a WebSocket `error` message); `ConnectionFailed` when the API cannot be reached."""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import ValidationError

from harclip.errors import HarclipError
from harclip.wire import ApiError, ErrorBody, ErrorMessage

__all__ = [
    "ApiError",
    "BadRequest",
    "ConnectionFailed",
    "Forbidden",
    "NotFound",
    "RateLimited",
    "ServerError",
    "Unauthorized",
    "error_for",
    "error_from_message",
    "typed_error",
]


class BadRequest(ApiError):
    """400/405/413/415/422 and other 4xx: the input was refused (the message says why)."""


class Unauthorized(ApiError):
    """401: no API key or an unknown one."""


class Forbidden(ApiError):
    """403: the key's role does not allow this."""


class NotFound(ApiError):
    """404."""


class RateLimited(ApiError):
    """429: too many requests; `retry_after` seconds until the next is allowed."""

    retriable = True

    @property
    def retry_after(self) -> float:
        raw = self.headers.get("retry-after", "1").strip()
        return float(raw) if raw.isascii() and raw.isdigit() else 1.0


class ServerError(ApiError):
    """5xx: the server or a dependency failed (503 `unavailable`: try again later)."""

    retriable = True


class ConnectionFailed(HarclipError):
    """The API could not be reached, or a WebSocket to it was lost for good."""

    retriable = True


_BY_STATUS: dict[int, type[ApiError]] = {
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    429: RateLimited,
}


def typed_error(
    status: int, code: str, message: str, headers: Mapping[str, str] | None = None
) -> ApiError:
    """The `ApiError` subclass for `status` (headers keyed in lower case)."""
    cls = _BY_STATUS.get(status) or (ServerError if status >= 500 else BadRequest)
    return cls(status, code, message, {k.lower(): v for k, v in (headers or {}).items()})


def error_for(status: int, body: bytes, headers: Mapping[str, str] | None = None) -> ApiError:
    """The error for an HTTP error answer: its `ErrorBody`, or (a proxy's page, say) its text."""
    try:
        detail = ErrorBody.model_validate_json(body).error
    except ValidationError:
        text = body.decode(errors="replace").strip()[:500]
        return typed_error(status, "http_error", text or f"HTTP {status}", headers)
    return typed_error(status, detail.code, detail.message, headers)


def error_from_message(message: ErrorMessage) -> ApiError:
    """The error a WebSocket `error` message reports, with the status the server gave it (and
    its `retry_after` as a Retry-After header)."""
    return typed_error(
        message.status, message.error.code, message.error.message, message.exception().headers
    )
