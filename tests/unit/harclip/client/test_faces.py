"""The two client faces have the same typed methods (same names, parameters and return types;
only `async` differs), and the request builder makes the requests the API expects."""

from __future__ import annotations

import inspect
from typing import get_type_hints

import httpx
import pytest

from harclip.client import AsyncClient, Client, _ingest, _requests
from harclip.client.errors import (
    BadRequest,
    ConnectionFailed,
    Forbidden,
    NotFound,
    RateLimited,
    ServerError,
    Unauthorized,
    error_for,
    error_from_message,
)
from harclip.client.subscription import _Resumer
from harclip.wire import ErrorMessage, PredictionMessage, PredictResponse, Subscribed

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
        if name not in (
            "subscribe",
            "subscribe_events",
            "ingest",
        ):  # iterators and iterables differ by face
            assert hs == ha, name


def test_every_endpoint_method_has_a_builder() -> None:
    for name in _public(Client):
        if name not in ("subscribe", "subscribe_events", "ws_url"):
            assert name == "ingest" or callable(getattr(_requests, name)), name


def test_builder_requests() -> None:
    http = httpx.Client(base_url="http://api")
    try:
        req = _requests.history("cam 1#x", label="cycling", size=3).build(http)
        assert req.method == "GET"
        assert str(req.url) == "http://api/streams/cam%201%23x/history?label=cycling&size=3"
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


def test_an_ingest_frame_is_sent_again_only_after_a_transient_refusal_within_its_budget() -> None:
    def refusal(status: int, retry_after: int | None) -> ErrorMessage:
        detail = {"code": "c", "message": "m"}
        return ErrorMessage(status=status, error=detail, seq=3, retry_after=retry_after)

    assert _ingest._wait_before_resending(refusal(429, 2), 0.0, 60.0) == 2.0
    with pytest.raises(RateLimited) as e:  # 59 s waited already: 2 more would pass the budget
        _ingest._wait_before_resending(refusal(429, 2), 59.0, 60.0)
    assert e.value.retry_after == 2.0
    with pytest.raises(BadRequest):  # not transient: raises at once
        _ingest._wait_before_resending(refusal(415, None), 0.0, 60.0)


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


@pytest.mark.parametrize(
    ("stream_id", "segment"),
    [("lobby #2", "lobby%20%232"), ("..", "%2E%2E"), (".", "%2E"), ("a%2Fb", "a%252Fb"),
     ("a?b", "a%3Fb"), ("...x", "...x")],
)  # fmt: skip
def test_stream_ids_are_one_path_segment(stream_id: str, segment: str) -> None:
    http = httpx.Client(base_url="http://api")
    try:
        for call, tail in ((_requests.latest, "latest"), (_requests.history, "history")):
            url = call(stream_id).build(http).url
            assert url.raw_path.decode() == f"/streams/{segment}/{tail}", stream_id
    finally:
        http.close()
    assert _requests.ingest_path(stream_id) == f"/ws/ingest/{segment}"
    assert _requests.subscribe_path(stream_id) == f"/ws/streams/{segment}"


@pytest.mark.parametrize("stream_id", ["a/b", "", "tab\there", "x" * 129])
def test_an_invalid_stream_id_is_refused_before_sending(stream_id: str) -> None:
    with pytest.raises(BadRequest) as e:
        _requests.latest(stream_id)
    assert (e.value.status, e.value.code) == (422, "invalid_stream_id")
    with pytest.raises(BadRequest):
        _requests.ingest_path(stream_id)


def test_retry_after_takes_ascii_digits_only() -> None:
    for raw, seconds in (("7", 7.0), ("\u00b2", 1.0), ("\u0663", 1.0), ("soon", 1.0)):
        err = error_for(429, b"{}", {"Retry-After": raw})
        assert isinstance(err, RateLimited) and err.retry_after == seconds, raw


def _resumer() -> _Resumer:
    return _Resumer(
        PredictionMessage, "http://api", "/ws/streams/cam", "cam", None, max_reconnects=2
    )


def test_a_subscription_outlives_the_servers_transient_errors() -> None:
    r = _resumer()
    seen: list[bool] = []
    r.on_interrupted = seen.append
    unavailable = ErrorMessage(status=503, error={"code": "unavailable", "message": "Redis"})
    assert r.read(unavailable.to_json()) is None and r.read(unavailable.to_json()) is None
    assert r.unavailable == 2 and r.transient is not None and seen == [True]
    assert r.closed(1000)  # a close after "unavailable" is reconnected, not the end
    r.read(Subscribed(positions={"cam": "0-0"}).to_json())
    assert r.transient is None and seen == [True, False] and not r.closed(1000)
    assert r.closed(1012) and r.closed(1001)  # the server restarts or goes away
    refused = ErrorMessage(status=422, error={"code": "invalid_position", "message": "m"})
    with pytest.raises(BadRequest):
        r.read(refused.to_json())


def test_failures_in_a_row_count_until_the_server_reads_again() -> None:
    r = _resumer()
    r.lost(OSError("1"))
    r.lost(OSError("2"))
    with pytest.raises(ConnectionFailed):
        r.lost(OSError("3"))
    r = _resumer()
    r.lost(OSError("1"))
    r.lost(OSError("2"))
    r.read(Subscribed(positions={}).to_json())
    r.lost(OSError("3"))  # a connection that subscribed again started a new count
