"""One error shape for every response, `{"error": {"code", "message"}}`, and the handlers that map
each expected failure to its HTTP status (bad input is 4xx, never 5xx)."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from harclip.errors import (
    DecodeError,
    EngineUnavailable,
    HarclipError,
    MessageError,
    ModelError,
    ReadRefused,
    SinkRefused,
    Unavailable,
)

log = logging.getLogger(__name__)

_STATUS_CODES: Mapping[int, str] = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    429: "rate_limited",
    503: "unavailable",
}


class ApiError(Exception):
    """An expected failure with its HTTP status, a stable machine code and a message for users."""

    def __init__(
        self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})


def error_body(code: str, message: str) -> dict[str, dict[str, str]]:
    return {"error": {"code": code, "message": message}}


def error_response(err: ApiError) -> JSONResponse:
    return JSONResponse(error_body(err.code, err.message), err.status, headers=err.headers)


def from_harclip(err: HarclipError) -> ApiError:
    """The HTTP meaning of a library error."""
    if isinstance(err, DecodeError):
        return ApiError(422, "invalid_image", str(err))
    if isinstance(err, MessageError):
        return ApiError(422, "invalid_message", str(err))
    if isinstance(err, Unavailable):
        return ApiError(503, "unavailable", str(err), {"Retry-After": "1"})
    if isinstance(err, SinkRefused | ReadRefused):
        return ApiError(500, "refused", str(err))
    if isinstance(err, EngineUnavailable | ModelError):
        return ApiError(500, "model_error", str(err))
    return ApiError(500, "internal", str(err))


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(x) for x in err.get("loc", ()) if x != "body")
        parts.append(f"{loc}: {err.get('msg', 'invalid')}" if loc else str(err.get("msg")))
    return "; ".join(parts) or "invalid request"


def install_handlers(app: FastAPI) -> None:
    """Register the handlers that turn every exception into the one JSON error shape."""

    async def on_api_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        return error_response(exc)

    async def on_validation(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return error_response(ApiError(422, "invalid_request", _validation_message(exc)))

    async def on_http(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        code = _STATUS_CODES.get(exc.status_code, "error")
        headers = dict(exc.headers or {})
        return error_response(ApiError(exc.status_code, code, str(exc.detail), headers))

    async def on_harclip(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HarclipError)
        err = from_harclip(exc)
        if err.status >= 500:
            log.error("request failed: %s", exc, exc_info=exc)
        return error_response(err)

    async def on_unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.error("unexpected error", exc_info=exc)
        return error_response(ApiError(500, "internal", "internal server error"))

    app.add_exception_handler(ApiError, on_api_error)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(HarclipError, on_harclip)
    app.add_exception_handler(Exception, on_unexpected)
