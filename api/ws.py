"""WebSockets: live Predictions from Redis (`/ws/streams/{id}`, `/ws/streams`) with a resume
position, heartbeats and a bounded per-client queue (a slow client loses its oldest undelivered
messages, counted and reported to it); `/ws/ingest/{stream_id}` publishes JPEG frames sent by a
client to `harclip.frames` and acknowledges each.

Server -> client (JSON text):
  {"type": "prediction", "stream_id", "id": "<entry id>", "prediction": {...}}
  {"type": "subscribed", "positions": {"<stream id>": "<entry id>"}}   (first, once reading)
  {"type": "heartbeat", "at": <ms>}
  {"type": "dropped", "count": <since last report>, "total": <this connection>}
  {"type": "ack", "frame_id", "seq"}                      (ingest)
  {"type": "error", "error": {"code", "message"}}
Client -> server: {"type": "resume", "after": "<entry id>" | {"<stream id>": "<entry id>"}}
(subscriptions), binary image frames (ingest).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Mapping
from typing import Any

from aiokafka.errors import KafkaError
from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from starlette.websockets import WebSocketState

from api.auth import Role, key_from
from api.errors import ApiError, error_body, error_response
from api.limits import check_image
from api.runtime import Runtime
from harclip.errors import HarclipError
from harclip.messages import Frame, new_frame_id, now_ms

router = APIRouter()
log = logging.getLogger(__name__)

_READ_BLOCK_MS = 1000  # one Redis read waits at most this long, ms (then streams are re-listed)
_READ_COUNT = 200  # entries per stream per read
_UNAVAILABLE_RETRY_S = 1.0  # pause after a failed Redis read, seconds
Positions = dict[str, str]


def _runtime(ws: WebSocket) -> Runtime:
    rt: Runtime = ws.app.state.runtime
    return rt


async def _admit(ws: WebSocket, role: Role) -> bool:
    """Check the key before accepting; refuse with an HTTP 401/403/429 response (or close code
    1008 where the server cannot send one)."""
    rt = _runtime(ws)
    try:
        rt.auth.check(key_from(ws.headers, ws.query_params), role)
        return True
    except ApiError as e:
        try:
            await ws.send_denial_response(error_response(e))
        except RuntimeError:
            await ws.close(code=1008, reason=e.message[:120])
        return False


def _parse_after(raw: object, stream_id: str | None) -> Positions | str:
    """A resume position: a map stream -> entry id, or one entry id for every stream."""
    if isinstance(raw, str):
        raw = raw.strip()
        if raw.startswith("{"):
            try:
                raw = json.loads(raw)
            except json.JSONDecodeError:
                raise ApiError(422, "invalid_position", "'after' is not valid JSON") from None
        else:
            return _check_entry_id(raw)
    if isinstance(raw, Mapping):
        out: Positions = {}
        for k, v in raw.items():
            if not isinstance(k, str) or not isinstance(v, str):
                raise ApiError(422, "invalid_position", "'after' maps stream ids to entry ids")
            out[k] = _check_entry_id(v)
        if stream_id is not None:
            return out.get(stream_id, "0-0")
        return out
    raise ApiError(422, "invalid_position", "'after' is an entry id or {stream id: entry id}")


def _check_entry_id(v: str) -> str:
    ms, sep, seq = v.partition("-")
    if not ms.isdigit() or (sep and not seq.isdigit()) or len(v) > 41:
        raise ApiError(
            422, "invalid_position", f"{v!r} is not a Redis entry id like 1700000000000-0"
        )
    return v


class _Outbox:
    """A bounded queue of messages for one client: when full the oldest is dropped and counted."""

    def __init__(self, size: int) -> None:
        self._items: collections.deque[dict[str, Any]] = collections.deque(maxlen=size)
        self._ready = asyncio.Event()
        self.dropped = 0  # not yet reported
        self.total_dropped = 0

    def put(self, message: dict[str, Any]) -> bool:
        """Queue `message`; False when the oldest message had to be dropped."""
        full = len(self._items) == self._items.maxlen
        self._items.append(message)
        if full:
            self.dropped += 1
            self.total_dropped += 1
        self._ready.set()
        return not full

    def clear(self) -> None:
        self._items.clear()

    async def get(self, timeout_s: float) -> dict[str, Any] | None:
        """The next message (a drop report first, if any), or None after `timeout_s` seconds."""
        if not self._items and not self.dropped:
            self._ready.clear()
            try:
                await asyncio.wait_for(self._ready.wait(), timeout_s)
            except TimeoutError:
                return None
        if self.dropped:
            report = {
                "type": "dropped",
                "count": self.dropped,
                "total": self.total_dropped,
                "message": f"{self.dropped} predictions dropped: the client reads too slowly",
            }
            self.dropped = 0
            return report
        return self._items.popleft() if self._items else None


def _cancelling() -> bool:
    """Whether this task was asked to stop (a client library may turn the cancellation of a
    blocking read into another error; the loop must still end)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


class _Subscription:
    """One subscriber: a Redis reader, a sender and a receiver of resume messages."""

    def __init__(self, ws: WebSocket, rt: Runtime, stream_id: str | None) -> None:
        self.ws = ws
        self.rt = rt
        self.stream_id = stream_id
        self.outbox = _Outbox(rt.settings.api.ws_queue_size)
        self.positions: Positions = {}
        self.default_after: str | None = None  # for streams discovered later (all-stream mode)
        self._restart = asyncio.Event()

    async def set_position(self, after: Positions | str | None) -> None:
        from harclip.io import store

        r, s = self.rt.redis(), self.rt.settings.redis
        ids = (
            [self.stream_id]
            if self.stream_id
            else [sid for sid, _ in await store.list_streams(r, s)]
        )
        if after is None:
            self.positions = await store.tail_positions(r, s, ids)
            self.default_after = "0-0"  # a stream first seen later is new: all of it is wanted
        elif isinstance(after, str):
            self.positions = dict.fromkeys(ids, after)
            self.default_after = after
        else:
            self.positions = {sid: after.get(sid, "0-0") for sid in ids}
            self.default_after = "0-0"
        self.outbox.clear()
        self._restart.set()

    async def read_loop(self) -> None:
        from harclip.io import store

        r, s = self.rt.redis(), self.rt.settings.redis
        while not _cancelling():
            self._restart.clear()
            try:
                if self.stream_id is None:
                    for sid, _ in await store.list_streams(r, s):
                        self.positions.setdefault(sid, self.default_after or "0-0")
                ids = list(self.positions)
                rows = (
                    await store.read_recent(
                        r, s, ids, self.positions, count=_READ_COUNT, block_ms=_READ_BLOCK_MS
                    )
                    if ids
                    else []
                )
                if not ids:
                    await asyncio.wait_for(self._restart.wait(), _READ_BLOCK_MS / 1000)
            except TimeoutError:
                continue
            except HarclipError as e:
                if _cancelling():
                    return
                self.outbox.put({"type": "error", **error_body("unavailable", str(e))})
                await asyncio.sleep(_UNAVAILABLE_RETRY_S)
                continue
            if self._restart.is_set():
                continue  # a resume arrived while reading: these rows are from the old position
            for entry_id, pred in rows:
                self.positions[pred.stream_id] = entry_id
                if not self.outbox.put(
                    {
                        "type": "prediction",
                        "stream_id": pred.stream_id,
                        "id": entry_id,
                        "prediction": pred.to_dict(),
                    }
                ):
                    self.rt.metrics.ws_dropped.inc()

    async def send_loop(self) -> None:
        heartbeat = self.rt.settings.api.ws_heartbeat_s
        while True:
            message = await self.outbox.get(heartbeat)
            if message is None:
                message = {"type": "heartbeat", "at": now_ms()}
            await self.ws.send_json(message)
            if message["type"] == "prediction":
                self.rt.metrics.ws_sent.inc()

    async def receive_loop(self) -> None:
        while True:
            try:
                msg = await self.ws.receive_json()
            except WebSocketDisconnect:
                return
            except (json.JSONDecodeError, KeyError, UnicodeDecodeError):
                await self._error("invalid_message", 'send {"type": "resume", "after": ...}')
                continue
            if not isinstance(msg, dict) or msg.get("type") != "resume":
                await self._error("invalid_message", 'send {"type": "resume", "after": ...}')
                continue
            try:
                await self.set_position(_parse_after(msg.get("after", "0-0"), self.stream_id))
            except ApiError as e:
                await self._error(e.code, e.message)

    async def _error(self, code: str, message: str) -> None:
        self.outbox.put({"type": "error", **error_body(code, message)})


async def _subscribe(ws: WebSocket, stream_id: str | None) -> None:
    if not await _admit(ws, "read"):
        return
    rt = _runtime(ws)
    await ws.accept()
    sub = _Subscription(ws, rt, stream_id)
    counted = False
    async with _session(ws):
        try:
            raw = ws.query_params.get("after")
            await sub.set_position(_parse_after(raw, stream_id) if raw else None)
            # counted (and announced) once the position is held: what is written from now on arrives
            rt.metrics.ws_clients.labels("subscribe").inc()
            counted = True
            await ws.send_json({"type": "subscribed", "positions": sub.positions})
            tasks = [
                asyncio.create_task(c)
                for c in (sub.read_loop(), sub.send_loop(), sub.receive_loop())
            ]
            done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for t in pending:
                t.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            for t in done:
                exc = t.exception()
                if exc is not None and not isinstance(exc, WebSocketDisconnect | RuntimeError):
                    raise exc
        finally:
            if counted:
                rt.metrics.ws_clients.labels("subscribe").dec()


async def _close_quietly(ws: WebSocket) -> None:
    with contextlib.suppress(RuntimeError, WebSocketDisconnect):  # the peer is gone
        await ws.close()


@contextlib.asynccontextmanager
async def _session(ws: WebSocket) -> AsyncIterator[None]:
    """Ends an accepted WebSocket session: an expected error becomes an `error` message to the
    client (never a traceback), a client that left is fine, and the socket is closed."""
    try:
        yield
    except ApiError as e:
        await ws.send_json({"type": "error", **error_body(e.code, e.message)})
    except HarclipError as e:
        await ws.send_json({"type": "error", **error_body("unavailable", str(e))})
    except WebSocketDisconnect:
        pass
    finally:
        if ws.application_state != WebSocketState.DISCONNECTED:
            await _close_quietly(ws)


@router.websocket("/ws/streams/{stream_id}")
async def subscribe_stream(ws: WebSocket, stream_id: str) -> None:
    """Live predictions of one stream; `?after=<entry id>` resumes after that entry."""
    await _subscribe(ws, stream_id)


@router.websocket("/ws/streams")
async def subscribe_all(ws: WebSocket) -> None:
    """Live predictions of every stream; `?after=` an entry id or a JSON {stream: entry id}."""
    await _subscribe(ws, None)


def _check_stream_id(stream_id: str) -> None:
    if not stream_id or len(stream_id) > 128 or not stream_id.isprintable():
        raise ApiError(422, "invalid_stream_id", "stream ids are 1-128 printable characters")


@router.websocket("/ws/ingest/{stream_id}")
async def ingest(ws: WebSocket, stream_id: str) -> None:
    """Binary messages are image frames (JPEG, PNG, ...) of `stream_id`: each is published to
    the frames topic and acknowledged with its frame_id once Kafka has it."""
    if not await _admit(ws, "predict"):
        return
    rt = _runtime(ws)
    await ws.accept()
    rt.metrics.ws_clients.labels("ingest").inc()
    s = rt.settings
    limit = min(s.api.max_body_bytes, s.kafka.max_message_bytes)
    seq = 0
    async with _session(ws):
        try:
            _check_stream_id(stream_id)
            producer = await rt.producer()
            while True:
                message = await ws.receive()
                if message["type"] == "websocket.disconnect":
                    return
                data = message.get("bytes")
                if data is None:
                    await ws.send_json(
                        {
                            "type": "error",
                            **error_body("invalid_message", "send each frame as a binary message"),
                        }
                    )
                    continue
                try:
                    if len(data) > limit:
                        raise ApiError(
                            413,
                            "payload_too_large",
                            f"frame of {len(data):,} bytes; the limit is {limit:,}",
                        )
                    header = check_image(data, max_pixels=s.model.max_pixels, name="frame")
                except ApiError as e:
                    await ws.send_json(
                        {"type": "error", "seq": seq, **error_body(e.code, e.message)}
                    )
                    continue
                frame = Frame(
                    new_frame_id(),
                    stream_id,
                    seq,
                    now_ms(),
                    data,
                    content_type=f"image/{header.format}",
                )
                try:
                    await producer.send_and_wait(
                        s.kafka.topics.frames, data, key=stream_id.encode(), headers=frame.headers()
                    )
                except KafkaError as e:
                    await ws.send_json(
                        {
                            "type": "error",
                            "seq": seq,
                            **error_body("unavailable", f"Kafka did not take the frame: {e!r}"),
                        }
                    )
                    continue
                rt.metrics.ingested.inc()
                await ws.send_json({"type": "ack", "frame_id": frame.frame_id, "seq": seq})
                seq += 1
        finally:
            rt.metrics.ws_clients.labels("ingest").dec()
