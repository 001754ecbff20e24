"""WebSockets: live Predictions from Redis (`/ws/streams/{id}`, `/ws/streams`) with a resume
position, heartbeats and a bounded per-client queue (a slow client loses its oldest undelivered
messages, counted and reported to it); `/ws/ingest/{stream_id}` publishes image frames sent by a
client to `harclip.frames` and acknowledges each.

Every message is a `harclip.wire` type. Server -> client: `Subscribed` (first, once reading),
`PredictionMessage`, `Heartbeat`, `Dropped`, `Ack` (ingest), `ErrorMessage` (with its HTTP-like
status). Client -> server: `Resume` (subscriptions), binary image frames (ingest).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import AsyncIterator, Mapping

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from pydantic import TypeAdapter, ValidationError
from starlette.websockets import WebSocketDisconnected, WebSocketState

from api.auth import Principal, Role, key_from, peer_of
from api.errors import error_response, from_harclip
from api.limits import check_image
from api.runtime import Runtime, RuntimeDep
from api.streams import checked_stream_id
from harclip.errors import HarclipError
from harclip.io.kafka import send_frame
from harclip.messages import Frame, new_frame_id, now_ms
from harclip.wire import (
    Ack,
    ApiError,
    Dropped,
    EntryId,
    ErrorMessage,
    Heartbeat,
    PredictionMessage,
    Resume,
    ServerMessage,
    Subscribed,
    WireModel,
)

router = APIRouter()
log = logging.getLogger(__name__)

_READ_BLOCK_MS = 1000  # one Redis read waits at most this long, ms (then streams are re-listed)
_READ_COUNT = 200  # entries per stream per read
_UNAVAILABLE_RETRY_S = 1.0  # pause after a failed Redis read, seconds
Positions = dict[str, str]
_AFTER: TypeAdapter[str | dict[str, str]] = TypeAdapter(EntryId | dict[str, EntryId])
_RESUME_HINT = 'send {"type": "resume", "after": "<entry id>" | {"<stream id>": "<entry id>"}}'


async def _send(ws: WebSocket, message: WireModel) -> None:
    await ws.send_text(message.to_json())


async def _admit(
    ws: WebSocket, rt: Runtime, role: Role, *, write: bool = False, stream_id: str | None = None
) -> Principal | None:
    """Check the key (and, for ingest, that it may write to `stream_id`) before accepting; the
    caller's principal, or None after refusing with the HTTP 401/403/422/429 error answer, or a
    close with code 1008 where the server lacks the WebSocket Denial Response extension
    (Starlette would raise RuntimeError: ask for the extension instead of catching that)."""
    try:
        principal = rt.auth.check(
            key_from(ws.headers, ws.query_params), role, write=write, peer=peer_of(ws.scope)
        )
        if write and stream_id is not None:
            checked_stream_id(stream_id)
            if not principal.may_ingest(stream_id):
                raise ApiError(
                    403, "forbidden",
                    f"this key may not ingest into stream {stream_id!r} (its streams: "
                    f"{', '.join(principal.streams or ())})",
                )  # fmt: skip
        return principal
    except ApiError as e:
        if "websocket.http.response" in ws.scope.get("extensions", {}):
            await ws.send_denial_response(error_response(e))
        else:
            await ws.close(code=1008, reason=e.message[:120])
        return None


def _parse_after(raw: str | Mapping[str, str], stream_id: str | None) -> Positions | str:
    """A resume position: a map stream -> entry id, or one entry id for every stream. The query
    parameter may carry the map as JSON text."""
    try:
        after = (
            _AFTER.validate_json(raw)
            if isinstance(raw, str) and raw.lstrip().startswith("{")
            else _AFTER.validate_python(raw.strip() if isinstance(raw, str) else raw)
        )
    except ValidationError:
        raise ApiError(
            422,
            "invalid_position",
            "'after' is an entry id like 1700000000000-0 or {stream id: entry id}",
        ) from None
    if isinstance(after, dict) and stream_id is not None:
        return after.get(stream_id, "0-0")
    return after


class _Outbox:
    """A bounded queue of messages for one client: when full the oldest is dropped and counted."""

    def __init__(self, size: int) -> None:
        self._items: collections.deque[ServerMessage] = collections.deque(maxlen=size)
        self._ready = asyncio.Event()
        self.dropped = 0  # not yet reported
        self.total_dropped = 0

    def put(self, message: ServerMessage) -> bool:
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

    async def get(self, timeout_s: float) -> ServerMessage | None:
        """The next message (a drop report first, if any), or None after `timeout_s` seconds."""
        if not self._items and not self.dropped:
            self._ready.clear()
            try:
                await asyncio.wait_for(self._ready.wait(), timeout_s)
            except TimeoutError:
                return None
        if self.dropped:
            report = Dropped(
                count=self.dropped,
                total=self.total_dropped,
                message=f"{self.dropped} predictions dropped: the client reads too slowly",
            )
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

    def __init__(
        self, ws: WebSocket, rt: Runtime, stream_id: str | None, principal: Principal
    ) -> None:
        self.ws = ws
        self.rt = rt
        self.stream_id = stream_id
        self.principal = principal
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
                if not e.retriable:
                    raise  # refused for good: the session ends with the error, never loops on it
                self.outbox.put(from_harclip(e).message_for_ws())
                await asyncio.sleep(_UNAVAILABLE_RETRY_S)
                continue
            if self._restart.is_set():
                continue  # a resume arrived while reading: these rows are from the old position
            for entry_id, pred in rows:
                self.positions[pred.stream_id] = entry_id
                message = PredictionMessage(stream_id=pred.stream_id, id=entry_id, prediction=pred)
                if not self.outbox.put(message):
                    self.rt.metrics.ws_dropped.inc()

    async def send_loop(self) -> None:
        heartbeat = self.rt.settings.api.ws_heartbeat_s
        while True:
            message = await self.outbox.get(heartbeat)
            await _send(self.ws, message or Heartbeat(at=now_ms()))
            if isinstance(message, PredictionMessage):
                self.rt.metrics.ws_sent.inc()

    async def receive_loop(self) -> None:
        while True:
            raw = await self.ws.receive()
            if raw["type"] == "websocket.disconnect":
                return
            try:
                self.rt.auth.charge(self.principal)  # every message costs a token
                resume = Resume.model_validate_json(raw.get("text") or raw.get("bytes") or b"")
                await self.set_position(_parse_after(resume.after, self.stream_id))
            except ValidationError:
                self.outbox.put(ApiError(422, "invalid_message", _RESUME_HINT).message_for_ws())
            except ApiError as e:
                self.outbox.put(e.message_for_ws())


async def _subscribe(ws: WebSocket, rt: Runtime, stream_id: str | None) -> None:
    principal = await _admit(ws, rt, "read")
    if principal is None:
        return
    await ws.accept()
    sub = _Subscription(ws, rt, stream_id, principal)
    counted = False
    async with _session(ws):
        try:
            if stream_id is not None:
                checked_stream_id(stream_id)
            raw = ws.query_params.get("after")
            await sub.set_position(_parse_after(raw, stream_id) if raw else None)
            # counted (and announced) once the position is held: what is written from now on arrives
            rt.metrics.ws_clients.labels("subscribe").inc()
            counted = True
            await _send(ws, Subscribed(positions=sub.positions))
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
                # WebSocketDisconnect: a send to a client that left (Starlette turns the
                # server's OSError into it); WebSocketDisconnected: a use after the close.
                if exc is not None and not isinstance(
                    exc, WebSocketDisconnect | WebSocketDisconnected
                ):
                    raise exc
        finally:
            if counted:
                rt.metrics.ws_clients.labels("subscribe").dec()


@contextlib.asynccontextmanager
async def _session(ws: WebSocket) -> AsyncIterator[None]:
    """Ends an accepted WebSocket session: an expected error becomes an `error` message to the
    client (never a traceback), a client that left is fine, and the socket is closed."""
    # Sending to (or closing towards) a client that already left raises WebSocketDisconnect:
    # Starlette wraps the server's OSError (uvicorn's ClientDisconnected) into it.
    try:
        yield
    except HarclipError as e:
        with contextlib.suppress(WebSocketDisconnect):
            await _send(ws, from_harclip(e).message_for_ws())
    except WebSocketDisconnect:
        pass
    finally:
        if ws.application_state == WebSocketState.CONNECTED:
            with contextlib.suppress(WebSocketDisconnect):
                await ws.close()


@router.websocket("/ws/streams/{stream_id}")
async def subscribe_stream(ws: WebSocket, stream_id: str, rt: RuntimeDep) -> None:
    """Live predictions of one stream; `?after=<entry id>` resumes after that entry."""
    await _subscribe(ws, rt, stream_id)


@router.websocket("/ws/streams")
async def subscribe_all(ws: WebSocket, rt: RuntimeDep) -> None:
    """Live predictions of every stream; `?after=` an entry id or a JSON {stream: entry id}."""
    await _subscribe(ws, rt, None)


@router.websocket("/ws/ingest/{stream_id}")
async def ingest(ws: WebSocket, stream_id: str, rt: RuntimeDep) -> None:
    """Binary messages are image frames (JPEG, PNG, ...) of `stream_id`: each is published to
    the frames topic and acknowledged with its frame_id once Kafka has it. A write: with auth on
    the key needs the predict role and a stream scope that covers `stream_id`; with auth off an
    admin key. Each frame costs a token of the key's rate limit."""
    principal = await _admit(ws, rt, "predict", write=True, stream_id=stream_id)
    if principal is None:
        return
    await ws.accept()
    rt.metrics.ws_clients.labels("ingest").inc()
    async with _session(ws):
        try:
            producer = await rt.producer()
            seq = 0
            while True:
                message = await ws.receive()
                if message["type"] == "websocket.disconnect":
                    return
                try:
                    rt.auth.charge(principal)
                except ApiError as e:
                    await _send(ws, e.message_for_ws(seq))
                    continue
                reply = await _ingest_one(rt, producer, stream_id, seq, message.get("bytes"))
                await _send(ws, reply)
                if isinstance(reply, Ack):
                    seq += 1
        finally:
            rt.metrics.ws_clients.labels("ingest").dec()


async def _ingest_one(
    rt: Runtime, producer: AIOKafkaProducer, stream_id: str, seq: int, data: bytes | None
) -> Ack | ErrorMessage:
    """Check one frame and publish it; its `Ack` once Kafka has it, or the `ErrorMessage`."""
    s = rt.settings
    limit = min(s.api.max_body_bytes, s.kafka.max_message_bytes)
    try:
        if data is None:
            raise ApiError(422, "invalid_message", "send each frame as a binary message")
        if len(data) > limit:
            raise ApiError(
                413, "payload_too_large", f"frame of {len(data):,} bytes; the limit is {limit:,}"
            )
        header = await rt.in_pool(check_image, data, s.model.max_pixels, "frame")
    except ApiError as e:
        return e.message_for_ws(seq)
    frame = Frame(
        new_frame_id(), stream_id, seq, now_ms(), data, content_type=f"image/{header.format}"
    )
    try:
        await (await send_frame(producer, s.kafka.topics.frames, frame))
    except KafkaError as e:
        refused = ApiError(503, "unavailable", f"Kafka did not take the frame: {e!r}")
        return refused.message_for_ws(seq)
    rt.metrics.ingested.inc()
    return Ack(frame_id=frame.frame_id, seq=seq)
