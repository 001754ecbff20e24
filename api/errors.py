"""One error shape for every response (`harclip.wire.ErrorBody`: `{"error": {"code", "message"}}`),
the handlers that map each expected failure to its HTTP status (bad input is 4xx, never 5xx) and
the OpenAPI entries of the error statuses a route may answer."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

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
    Overloaded,
    ReadRefused,
    SinkRefused,
    Unavailable,
)
from harclip.wire import ApiError, ErrorBody

log = logging.getLogger(__name__)

_STATUS_CODES: Mapping[int, str] = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    416: "range_not_satisfiable",
    422: "invalid_request",
    429: "rate_limited",
    503: "unavailable",
}


def error_response(err: ApiError) -> JSONResponse:
    return JSONResponse(err.body().model_dump(), err.status, headers=err.headers)


def from_harclip(err: HarclipError) -> ApiError:
    """The HTTP meaning of a library error (an `ApiError` already has one)."""
    if isinstance(err, ApiError):
        return err
    if isinstance(err, DecodeError):
        return ApiError(422, "invalid_image", str(err))
    if isinstance(err, MessageError):
        return ApiError(422, "invalid_message", str(err))
    if isinstance(err, Unavailable):
        return ApiError(503, "unavailable", str(err), {"Retry-After": "1"})
    if isinstance(err, Overloaded):
        return ApiError(503, "overloaded", str(err), {"Retry-After": "1"})
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


_STATUS_TEXT: Mapping[int, str] = {
    400: "bad request (e.g. refused URL, a Host this API does not serve)",
    401: "missing or unknown API key",
    403: "the key's role is too weak, or the page's origin is not allowed",
    404: "not found",
    413: "body or image too large",
    415: "not a supported image",
    416: "the byte range starts past the end of the object",
    422: "invalid input (schema, undecodable image, pixel limit)",
    429: "rate limit exceeded",
    503: "a dependency (Redis, Elasticsearch, Kafka, the object store) is unavailable, or the "
    "API is overloaded",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` entries for the error statuses a route may answer."""
    return {s: {"model": ErrorBody, "description": _STATUS_TEXT.get(s, "error")} for s in statuses}
