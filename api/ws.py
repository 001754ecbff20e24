"""WebSockets: live predictions (`/ws/streams/{id}`, `/ws/streams`) and live events of the events
app (`/ws/events/{id}`, `/ws/events`) from Redis through the shared feeds of `api.feeds`, with a
resume position, heartbeats and a bounded per-client queue (a slow client loses its oldest
undelivered messages, counted and reported to it); `/ws/ingest/{stream_id}` publishes image
frames sent by a client to `harclip.frames` and acknowledges each.

Every message is a `harclip.wire` type. Server -> client: `Subscribed` (first, once reading),
`PredictionMessage` / `EventMessage`, `Heartbeat`, `Dropped`, `Ack` (ingest), `ErrorMessage`
(with its HTTP-like status). Client -> server: `Resume` (subscriptions), binary image frames
(ingest).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Annotated

from aiokafka.errors import KafkaError
from fastapi import APIRouter, Depends, WebSocket, WebSocketDisconnect
from pydantic import TypeAdapter, ValidationError
from starlette.websockets import WebSocketDisconnected, WebSocketState

from api.auth import Authenticator, Principal, Role, key_from, peer_of
from api.clients import Clients, FeedKind
from api.errors import error_response, from_harclip
from api.feeds import Subscriber
from api.limits import check_image
from api.metrics import ApiMetrics
from api.predictor import Predictor
from api.runtime import AuthDep, ClientsDep, MetricsDep, PredictorDep, SettingsDep
from api.streams import checked_source_stream_id, checked_stream_id
from harclip.config import Settings
from harclip.errors import HarclipError
from harclip.io.kafka import RenewingProducer
from harclip.messages import Frame, new_frame_id, now_ms
from harclip.wire import (
    Ack,
    ApiError,
    EntryId,
    ErrorMessage,
    Resume,
    Subscribed,
    WireModel,
)

router = APIRouter()
log = logging.getLogger(__name__)

Positions = dict[str, str]
_AFTER: TypeAdapter[str | dict[str, str]] = TypeAdapter(EntryId | dict[str, EntryId])
_RESUME_HINT = 'send {"type": "resume", "after": "<entry id>" | {"<stream id>": "<entry id>"}}'


@dataclass(frozen=True, slots=True)
class _Live:
    """What a live subscription uses: key checks, the shared feeds, its settings and counts."""

    auth: Authenticator
    clients: Clients
    settings: Settings
    metrics: ApiMetrics


def _live(auth: AuthDep, clients: ClientsDep, settings: SettingsDep, metrics: MetricsDep) -> _Live:
    return _Live(auth, clients, settings, metrics)


LiveDep = Annotated[_Live, Depends(_live)]


async def _send(ws: WebSocket, message: WireModel) -> None:
    await ws.send_text(message.to_json())


async def _admit(
    ws: WebSocket,
    auth: Authenticator,
    role: Role,
    *,
    write: bool = False,
    stream_id: str | None = None,
) -> Principal | None:
    """Check the key (and, for ingest, that it may write to `stream_id`) before accepting; the
    caller's principal, or None after refusing with the HTTP 401/403/422/429 error answer, or a
    close with code 1008 where the server lacks the WebSocket Denial Response extension
    (Starlette would raise RuntimeError: ask for the extension instead of catching that)."""
    try:
        principal = auth.check(
            key_from(ws.headers, ws.query_params), role, write=write, peer=peer_of(ws.scope)
        )
        if write and stream_id is not None:
            checked_source_stream_id(stream_id)
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


async def _subscribe(ws: WebSocket, live: _Live, kind: FeedKind, stream_id: str | None) -> None:
    """A live subscription of `kind` (predictions or events) to one stream or all: the shared
    feed (`api.feeds`) sends to it; `Resume` messages move its position."""
    principal = await _admit(ws, live.auth, "read")
    if principal is None:
        return
    await ws.accept()
    feed = await live.clients.feed(kind)
    sub = Subscriber(feed, stream_id, live.settings.api.ws_queue_size)
    label = feed.source.kind
    counted = False
    async with _session(ws):
        try:
            if stream_id is not None:
                checked_stream_id(stream_id)
            raw = ws.query_params.get("after")
            await feed.attach(sub)
            await sub.position(_parse_after(raw, stream_id) if raw else None)
            # counted (and announced) once the position is held: what is written from now on arrives
            live.metrics.ws_clients.labels(label).inc()
            counted = True
            await _send(ws, Subscribed(positions=sub.positions))
            tasks = [
                asyncio.create_task(_send_loop(ws, live, sub)),
                asyncio.create_task(_receive_loop(ws, live, sub, principal)),
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
            feed.detach(sub)
            if counted:
                live.metrics.ws_clients.labels(label).dec()


async def _send_loop(ws: WebSocket, live: _Live, sub: Subscriber) -> None:
    heartbeat = live.settings.api.ws_heartbeat_s
    while True:
        await ws.send_text(await sub.outbox.get(heartbeat))


async def _receive_loop(ws: WebSocket, live: _Live, sub: Subscriber, principal: Principal) -> None:
    while True:
        raw = await ws.receive()
        if raw["type"] == "websocket.disconnect":
            return
        try:
            live.auth.charge(principal)  # every message costs a token
            resume = Resume.model_validate_json(raw.get("text") or raw.get("bytes") or b"")
            await sub.position(_parse_after(resume.after, sub.stream_id))
        except ValidationError:
            sub.outbox.put(
                ApiError(422, "invalid_message", _RESUME_HINT).message_for_ws().to_json()
            )
        except ApiError as e:
            sub.outbox.put(e.message_for_ws().to_json())
        except HarclipError as e:
            sub.outbox.put(from_harclip(e).message_for_ws().to_json())


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
async def subscribe_stream(ws: WebSocket, stream_id: str, live: LiveDep) -> None:
    """Live predictions of one stream; `?after=<entry id>` resumes after that entry."""
    await _subscribe(ws, live, "predictions", stream_id)


@router.websocket("/ws/streams")
async def subscribe_all(ws: WebSocket, live: LiveDep) -> None:
    """Live predictions of every stream; `?after=` an entry id or a JSON {stream: entry id}."""
    await _subscribe(ws, live, "predictions", None)


@router.websocket("/ws/events/{stream_id}")
async def subscribe_stream_events(ws: WebSocket, stream_id: str, live: LiveDep) -> None:
    """Live events (segments, alerts, stream up/down) of one stream; `?after=` resumes."""
    await _subscribe(ws, live, "events", stream_id)


@router.websocket("/ws/events")
async def subscribe_all_events(ws: WebSocket, live: LiveDep) -> None:
    """Live events of every stream; `?after=` an entry id or a JSON {stream: entry id}."""
    await _subscribe(ws, live, "events", None)


@router.websocket("/ws/ingest/{stream_id}")
async def ingest(
    ws: WebSocket,
    stream_id: str,
    predictor: PredictorDep,
    clients: ClientsDep,
    auth: AuthDep,
    api_metrics: MetricsDep,
    settings: SettingsDep,
) -> None:
    """Binary messages are image frames (JPEG, PNG, ...) of `stream_id`: each is published to
    the frames topic and acknowledged with its frame_id once Kafka has it. A write: with auth on
    the key needs the predict role and a stream scope that covers `stream_id`; with auth off an
    admin key. Each frame costs a token of the key's rate limit."""
    principal = await _admit(ws, auth, "predict", write=True, stream_id=stream_id)
    if principal is None:
        return
    await ws.accept()
    api_metrics.ws_clients.labels("ingest").inc()
    async with _session(ws):
        try:
            producer = await clients.frame_producer()
            seq = 0
            while True:
                message = await ws.receive()
                if message["type"] == "websocket.disconnect":
                    return
                try:
                    auth.charge(principal)
                except ApiError as e:
                    await _send(ws, e.message_for_ws(seq))
                    continue
                reply = await _ingest_one(
                    predictor, settings, producer, stream_id, seq, message.get("bytes")
                )
                if isinstance(reply, Ack):
                    api_metrics.ingested.inc()
                await _send(ws, reply)
                if isinstance(reply, Ack):
                    seq += 1
        finally:
            api_metrics.ws_clients.labels("ingest").dec()


async def _ingest_one(
    predictor: Predictor,
    s: Settings,
    producer: RenewingProducer,
    stream_id: str,
    seq: int,
    data: bytes | None,
) -> Ack | ErrorMessage:
    """Check one frame and publish it; its `Ack` once Kafka has it, or the `ErrorMessage`."""
    limit = min(s.api.max_body_bytes, s.kafka.max_message_bytes)
    try:
        if data is None:
            raise ApiError(422, "invalid_message", "send each frame as a binary message")
        if len(data) > limit:
            raise ApiError(
                413, "payload_too_large", f"frame of {len(data):,} bytes; the limit is {limit:,}"
            )
        header = await predictor.in_pool(check_image, data, s.model.max_pixels, "frame")
    except ApiError as e:
        return e.message_for_ws(seq)
    frame = Frame(
        new_frame_id(), stream_id, seq, now_ms(), data, content_type=f"image/{header.format}"
    )
    try:
        await (await producer.send_frame(s.kafka.topics.frames, frame))
    except KafkaError as e:
        refused = ApiError(
            503, "unavailable", f"Kafka did not take the frame: {e!r}", {"Retry-After": "1"}
        )
        return refused.message_for_ws(seq)
    return Ack(frame_id=frame.frame_id, seq=seq)
