"""The two client faces have the same typed methods (same names, parameters and return types;
only `async` differs), and the request builder makes the requests the API expects."""

from __future__ import annotations

import inspect
from typing import get_type_hints

import httpx
import pytest

from harclip.client import AsyncClient, Client, _requests
from harclip.client.errors import (
    BadRequest,
    Forbidden,
    NotFound,
    RateLimited,
    ServerError,
    Unauthorized,
    error_for,
    error_from_message,
)
from harclip.wire import ErrorMessage, PredictResponse

# Methods whose names differ only by the face's convention for closing.
_LIFECYCLE = {"aclose", "close"}


def _public(cls: type) -> dict[str, object]:
    return {
        name: fn
        for name, fn in vars(cls).items()
        if not name.startswith("_") and callable(fn) and name not in _LIFECYCLE
    }


def test_both_faces_have_the_same_methods() -> None:
    sync, async_ = _public(Client), _public(AsyncClient)
    assert sorted(sync) == sorted(async_)
    for name in sync:
        s, a = inspect.signature(sync[name]), inspect.signature(async_[name])  # type: ignore[arg-type]
        assert list(s.parameters) == list(a.parameters), name
        for p in s.parameters:
            assert s.parameters[p].kind == a.parameters[p].kind, (name, p)
            assert s.parameters[p].default == a.parameters[p].default, (name, p)
        hs, ha = get_type_hints(sync[name]), get_type_hints(async_[name])  # type: ignore[arg-type]
        if name not in ("subscribe", "ingest"):  # iterators and iterables differ by face
            assert hs == ha, name


def test_every_endpoint_method_has_a_builder() -> None:
    for name in _public(Client):
        if name not in ("subscribe", "ws_url"):
            assert name == "ingest" or callable(getattr(_requests, name)), name


def test_builder_requests() -> None:
    http = httpx.Client(base_url="http://api")
    try:
        req = _requests.history("cam 1/x", label="cycling", size=3).build(http)
        assert req.method == "GET"
        assert str(req.url) == "http://api/streams/cam%201%2Fx/history?label=cycling&size=3"
        req = _requests.predict_base64(b"hi", top_k=2).build(http)
        assert req.method == "POST" and req.url.path == "/predict"
        assert req.read() == b'{"image":"aGk=","top_k":2}'
        req = _requests.set_labels(["a"]).build(http)
        assert (req.method, req.read()) == ("PUT", b'{"labels":["a"],"prompts":{}}')
        req = _requests.predict_bytes(b"\xff\xd8", "p.jpg").build(http)
        assert req.url.path == "/predict/image" and b'filename="p.jpg"' in req.read()
    finally:
        http.close()


def test_answers_are_typed_and_errors_keep_the_status() -> None:
    call = _requests.predict_bytes(b"x")
    body = (
        b'{"results": [{"label": "a", "score": 0.5, "predictions": [{"label": "a", "score": 0.5}],'
        b' "model": {"name": "m", "version": "1", "head_version": 2},'
        b' "latency_ms": {"decode": 1, "queue": 0, "infer": 1, "total": 2}}]}'
    )
    answer = call.answer(httpx.Response(200, content=body))
    assert isinstance(answer, PredictResponse) and answer.model.head_version == 2
    with pytest.raises(BadRequest) as e:
        call.answer(
            httpx.Response(413, json={"error": {"code": "payload_too_large", "message": "m"}})
        )
    assert (e.value.status, e.value.code, e.value.message) == (413, "payload_too_large", "m")


@pytest.mark.parametrize(
    ("status", "cls"),
    [(400, BadRequest), (401, Unauthorized), (403, Forbidden), (404, NotFound), (405, BadRequest),
     (422, BadRequest), (429, RateLimited), (500, ServerError), (503, ServerError)],
)  # fmt: skip
def test_error_class_by_status(status: int, cls: type) -> None:
    err = error_for(status, b'{"error": {"code": "c", "message": "m"}}', {"Retry-After": "7"})
    assert type(err) is cls and err.status == status
    ws = error_from_message(ErrorMessage(status=status, error={"code": "c", "message": "m"}))
    assert type(ws) is cls and ws.status == status


def test_rate_limited_reads_retry_after_and_non_json_errors_keep_their_text() -> None:
    err = error_for(
        429, b'{"error": {"code": "rate_limited", "message": "m"}}', {"Retry-After": "7"}
    )
    assert isinstance(err, RateLimited) and err.retry_after == 7.0
    proxy = error_for(502, b"<html>bad gateway</html>")
    assert (
        isinstance(proxy, ServerError)
        and proxy.code == "http_error"
        and "bad gateway" in proxy.message
    )
