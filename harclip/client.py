"""Python client of the harclip API, sync (`Client`) and async (`AsyncClient`).

REST calls return the server's JSON (predict) or typed messages (Prediction); every error answer
raises an `ApiError` subclass carrying the server's code and message. `AsyncClient.subscribe`
is an async iterator over the live WebSocket that reconnects by itself and resumes after the last
entry it delivered, so a dropped connection loses nothing still in the server's recent cap.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlencode, urlsplit, urlunsplit

import httpx

from harclip.errors import HarclipError
from harclip.messages import Prediction

JSON = dict[str, Any]


class ApiError(HarclipError):
    """The API answered with an error: HTTP `status`, machine `code`, the server's `message`."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


class BadRequest(ApiError):
    """400/413/415/422: the input was refused (the message says why)."""


class Unauthorized(ApiError):
    """401: no API key or an unknown one."""


class Forbidden(ApiError):
    """403: the key's role does not allow this."""


class NotFound(ApiError):
    """404."""


class RateLimited(ApiError):
    """429: too many requests; `retry_after` seconds until the next is allowed."""

    retriable = True

    def __init__(self, status: int, code: str, message: str, retry_after: float = 1.0) -> None:
        super().__init__(status, code, message)
        self.retry_after = retry_after


class ServerError(ApiError):
    """5xx: the server or a dependency failed."""

    retriable = True


class ConnectionFailed(HarclipError):
    """The API could not be reached."""

    retriable = True


_BY_STATUS: dict[int, type[ApiError]] = {401: Unauthorized, 403: Forbidden, 404: NotFound}


def error_for(status: int, body: bytes, headers: Mapping[str, str] | None = None) -> ApiError:
    """The typed exception for an error answer (`{"error": {"code", "message"}}` or anything)."""
    code, message = "error", body.decode(errors="replace")[:500] or f"HTTP {status}"
    try:
        doc = json.loads(body)
        code, message = str(doc["error"]["code"]), str(doc["error"]["message"])
    except (ValueError, KeyError, TypeError):
        pass
    if status == 429:
        retry = (headers or {}).get("retry-after", "1")
        return RateLimited(status, code, message, float(retry) if retry.isdigit() else 1.0)
    if status >= 500:
        return ServerError(status, code, message)
    cls = _BY_STATUS.get(status, BadRequest)
    return cls(status, code, message)


def _check(response: httpx.Response) -> httpx.Response:
    if response.status_code >= 400:
        raise error_for(response.status_code, response.content, response.headers)
    return response


def _headers(api_key: str | None) -> dict[str, str]:
    return {"X-API-Key": api_key} if api_key else {}


def _drop_none(params: Mapping[str, object]) -> dict[str, Any]:
    return {k: v for k, v in params.items() if v is not None}


@dataclass(frozen=True, slots=True)
class HistoryPage:
    items: list[Prediction]
    next: str | None  # cursor of the next page


@dataclass(frozen=True, slots=True)
class SearchHit:
    similarity: float
    prediction: Prediction


@dataclass(frozen=True, slots=True)
class Update:
    """One live prediction from a subscription; `entry_id` is its resume position."""

    stream_id: str
    entry_id: str
    prediction: Prediction


def _entry_key(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


@dataclass
class Subscription:
    """Async iterator of `Update`s that reconnects and resumes by itself.

    `positions` holds the last entry id delivered per stream; `dropped` counts predictions the
    server dropped because this client read too slowly; `reconnects` counts reconnections.
    """

    client: AsyncClient
    stream_id: str | None
    positions: dict[str, str] = field(default_factory=dict)
    max_reconnects: int = 10
    dropped: int = 0
    reconnects: int = 0
    _socket: Any = None
    _closed: bool = False

    def __aiter__(self) -> AsyncIterator[Update]:
        return self._iterate()

    async def close(self) -> None:
        self._closed = True
        if self._socket is not None:
            await self._socket.close()

    def _url(self) -> str:
        path = f"/ws/streams/{self.stream_id}" if self.stream_id else "/ws/streams"
        query: dict[str, str] = {}
        if self.stream_id and self.stream_id in self.positions:
            query["after"] = self.positions[self.stream_id]
        elif not self.stream_id and self.positions:
            query["after"] = json.dumps(self.positions)
        return self.client.ws_url(path, query)

    async def _iterate(self) -> AsyncIterator[Update]:
        from websockets.asyncio.client import connect
        from websockets.exceptions import ConnectionClosed, InvalidStatus

        failures = 0
        while not self._closed:
            try:
                async with connect(
                    self._url(), additional_headers=_headers(self.client.api_key), max_size=2**24
                ) as socket:
                    self._socket = socket
                    failures = 0
                    async for raw in socket:
                        update = self._handle(json.loads(raw))
                        if update is not None:
                            yield update
                    return  # the server closed normally
            except InvalidStatus as e:
                resp = e.response
                raise error_for(
                    resp.status_code, bytes(resp.body or b""), dict(resp.headers)
                ) from None
            except (ConnectionClosed, OSError, TimeoutError) as e:
                if self._closed:
                    return
                failures += 1
                if failures > self.max_reconnects:
                    raise ConnectionFailed(f"subscription lost: {e!r}") from None
                self.reconnects += 1
                await asyncio.sleep(min(5.0, 0.1 * 2**failures))  # backoff before reconnecting
            finally:
                self._socket = None

    def _handle(self, msg: JSON) -> Update | None:
        kind = msg.get("type")
        if kind == "prediction":
            sid, entry = str(msg["stream_id"]), str(msg["id"])
            last = self.positions.get(sid)
            if last is not None and _entry_key(entry) <= _entry_key(last):
                return None  # already delivered before a reconnect
            self.positions[sid] = entry
            return Update(sid, entry, Prediction.model_validate(msg["prediction"]))
        if kind == "dropped":
            self.dropped += int(msg.get("count", 0))
        elif kind == "error":
            err = msg.get("error", {})
            raise ApiError(0, str(err.get("code", "error")), str(err.get("message", "")))
        return None


def _predict_kwargs(data: bytes, filename: str, top_k: int | None) -> dict[str, Any]:
    """The request arguments of `POST /predict/image` for one encoded image."""
    return {"files": {"files": (filename, data)}, "params": _drop_none({"top_k": top_k})}


def _first_result(resp: httpx.Response) -> JSON:
    result: JSON = resp.json()["results"][0]
    return result


class AsyncClient:
    """Async client of the harclip API at `url` (e.g. "http://127.0.0.1:8000")."""

    def __init__(
        self,
        url: str,
        api_key: str | None = None,
        *,
        timeout_s: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.api_key = api_key
        self._http = httpx.AsyncClient(
            base_url=self.url, headers=_headers(api_key), timeout=timeout_s, transport=transport
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    def ws_url(self, path: str, query: Mapping[str, str] | None = None) -> str:
        parts = urlsplit(self.url)
        scheme = "wss" if parts.scheme == "https" else "ws"
        return urlunsplit((scheme, parts.netloc, parts.path + path, urlencode(query or {}), ""))

    async def _request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        try:
            return _check(await self._http.request(method, path, **kw))
        except httpx.TransportError as e:
            raise ConnectionFailed(f"cannot reach {self.url}: {e!r}") from None

    # -- predict -------------------------------------------------------------------------------

    async def predict_bytes(
        self, data: bytes, filename: str = "image", top_k: int | None = None
    ) -> JSON:
        """The prediction for one encoded image: {"label", "score", "predictions", ...}."""
        resp = await self._request(
            "POST", "/predict/image", **_predict_kwargs(data, filename, top_k)
        )
        return _first_result(resp)

    async def predict_from_image_path(self, path: str | Path, top_k: int | None = None) -> JSON:
        p = Path(path)
        return await self.predict_bytes(p.read_bytes(), p.name, top_k)

    async def predict_from_image_url(self, url: str, top_k: int | None = None) -> JSON:
        resp = await self._request(
            "POST", "/predict", json=_drop_none({"image_url": url, "top_k": top_k})
        )
        result: JSON = resp.json()
        return result

    async def predict_base64(self, data: bytes, top_k: int | None = None) -> JSON:
        body = _drop_none({"image": base64.b64encode(data).decode(), "top_k": top_k})
        result: JSON = (await self._request("POST", "/predict", json=body)).json()
        return result

    # -- reads ---------------------------------------------------------------------------------

    async def info(self) -> JSON:
        result: JSON = (await self._request("GET", "/")).json()
        return result

    async def streams(self) -> list[tuple[str, int]]:
        doc = (await self._request("GET", "/streams")).json()
        return [(s["stream_id"], int(s["last_seen"])) for s in doc["streams"]]

    async def latest(self, stream_id: str) -> Prediction:
        resp = await self._request("GET", f"/streams/{stream_id}/latest")
        return Prediction.model_validate(resp.json())

    async def frame(self, stream_id: str) -> bytes:
        return (await self._request("GET", f"/streams/{stream_id}/frame")).content

    async def history(
        self,
        stream_id: str,
        *,
        start_ms: int | None = None,
        end_ms: int | None = None,
        label: str | None = None,
        min_score: float | None = None,
        size: int = 50,
        cursor: str | None = None,
    ) -> HistoryPage:
        params = _drop_none(
            {
                "start_ms": start_ms,
                "end_ms": end_ms,
                "label": label,
                "min_score": min_score,
                "size": size,
                "cursor": cursor,
            }
        )
        doc = (await self._request("GET", f"/streams/{stream_id}/history", params=params)).json()
        items = [Prediction.model_validate(p) for p in doc["items"]]
        return HistoryPage(items, doc.get("next"))

    async def search(
        self,
        q: str,
        *,
        k: int = 10,
        stream_id: str | None = None,
        start_ms: int | None = None,
        end_ms: int | None = None,
        label: str | None = None,
        min_score: float | None = None,
    ) -> list[SearchHit]:
        params = _drop_none(
            {
                "q": q,
                "k": k,
                "stream_id": stream_id,
                "start_ms": start_ms,
                "end_ms": end_ms,
                "label": label,
                "min_score": min_score,
            }
        )
        doc = (await self._request("GET", "/search", params=params)).json()
        return [
            SearchHit(h["similarity"], Prediction.model_validate(h["prediction"]))
            for h in doc["hits"]
        ]

    async def labels(self) -> JSON:
        result: JSON = (await self._request("GET", "/labels")).json()
        return result

    async def set_labels(
        self, labels: Iterable[str], prompts: Mapping[str, list[str]] | None = None
    ) -> JSON:
        """Replace the label set; the new head's description (with its `version`)."""
        body = {"labels": list(labels), "prompts": dict(prompts or {})}
        result: JSON = (await self._request("PUT", "/labels", json=body)).json()
        return result

    # -- WebSockets ----------------------------------------------------------------------------

    def subscribe(
        self,
        stream_id: str | None = None,
        *,
        after: str | Mapping[str, str] | None = None,
        max_reconnects: int = 10,
    ) -> Subscription:
        """Live predictions of one stream (or all, with None), from `after` (an entry id, or per
        stream for all) or from now; reconnects and resumes by itself."""
        positions: dict[str, str] = {}
        if isinstance(after, str):
            if stream_id is None:
                raise ValueError("give `after` per stream ({stream: entry id}) for all streams")
            positions[stream_id] = after
        elif after is not None:
            positions.update(after)
        return Subscription(self, stream_id, positions, max_reconnects)

    async def ingest(
        self, stream_id: str, frames: Iterable[bytes] | AsyncIterable[bytes]
    ) -> list[str]:
        """Send encoded frames of `stream_id` over the ingest WebSocket; their frame ids, once the
        server has published each to Kafka. A refused frame raises its `ApiError`."""
        from websockets.asyncio.client import connect
        from websockets.exceptions import InvalidStatus

        ids: list[str] = []
        try:
            async with connect(
                self.ws_url(f"/ws/ingest/{stream_id}"),
                additional_headers=_headers(self.api_key),
                max_size=2**24,
            ) as socket:
                async for data in _aiter(frames):
                    await socket.send(data)
                    msg = json.loads(await socket.recv())
                    if msg.get("type") != "ack":
                        err = msg.get("error", {})
                        raise error_for(_status_of(err.get("code")), json.dumps(msg).encode())
                    ids.append(str(msg["frame_id"]))
        except InvalidStatus as e:
            resp = e.response
            raise error_for(resp.status_code, bytes(resp.body or b""), dict(resp.headers)) from None
        except OSError as e:
            raise ConnectionFailed(f"cannot reach {self.url}: {e!r}") from None
        return ids


def _status_of(code: object) -> int:
    return {"payload_too_large": 413, "unsupported_media_type": 415, "unavailable": 503}.get(
        str(code), 422
    )


async def _aiter(items: Iterable[bytes] | AsyncIterable[bytes]) -> AsyncIterator[bytes]:
    if isinstance(items, AsyncIterable):
        async for x in items:
            yield x
    else:
        for x in items:
            yield x


class Client:
    """Blocking client of the harclip API (the seed's `InferenceClient` calls, and more)."""

    def __init__(self, url: str, api_key: str | None = None, *, timeout_s: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.api_key = api_key
        self._http = httpx.Client(base_url=self.url, headers=_headers(api_key), timeout=timeout_s)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        try:
            return _check(self._http.request(method, path, **kw))
        except httpx.TransportError as e:
            raise ConnectionFailed(f"cannot reach {self.url}: {e!r}") from None

    def predict_bytes(self, data: bytes, filename: str = "image", top_k: int | None = None) -> JSON:
        resp = self._request("POST", "/predict/image", **_predict_kwargs(data, filename, top_k))
        return _first_result(resp)

    def predict_from_image_path(self, path: str | Path, top_k: int | None = None) -> JSON:
        p = Path(path)
        return self.predict_bytes(p.read_bytes(), p.name, top_k)

    def predict_from_image_url(self, url: str, top_k: int | None = None) -> JSON:
        body = _drop_none({"image_url": url, "top_k": top_k})
        result: JSON = self._request("POST", "/predict", json=body).json()
        return result

    def info(self) -> JSON:
        result: JSON = self._request("GET", "/").json()
        return result

    def latest(self, stream_id: str) -> Prediction:
        return Prediction.model_validate(
            self._request("GET", f"/streams/{stream_id}/latest").json()
        )

    def history(self, stream_id: str, **filters: Any) -> HistoryPage:
        """See `AsyncClient.history` for the filters."""
        doc = self._request(
            "GET", f"/streams/{stream_id}/history", params=_drop_none(filters)
        ).json()
        return HistoryPage([Prediction.model_validate(p) for p in doc["items"]], doc.get("next"))

    def search(self, q: str, **filters: Any) -> list[SearchHit]:
        """See `AsyncClient.search` for the filters."""
        doc = self._request("GET", "/search", params=_drop_none({"q": q, **filters})).json()
        return [
            SearchHit(h["similarity"], Prediction.model_validate(h["prediction"]))
            for h in doc["hits"]
        ]

    def labels(self) -> JSON:
        result: JSON = self._request("GET", "/labels").json()
        return result

    def set_labels(
        self, labels: Iterable[str], prompts: Mapping[str, list[str]] | None = None
    ) -> JSON:
        body = {"labels": list(labels), "prompts": dict(prompts or {})}
        result: JSON = self._request("PUT", "/labels", json=body).json()
        return result

    def ingest(self, stream_id: str, frames: Iterable[bytes]) -> list[str]:
        """Blocking `AsyncClient.ingest` (runs its own event loop; not from inside one)."""

        async def run() -> list[str]:
            async with AsyncClient(self.url, self.api_key) as c:
                return await c.ingest(stream_id, frames)

        return asyncio.run(run())
