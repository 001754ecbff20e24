"""WebSocket messages, both ways; `ServerMessage` is the union on `type`."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, TypeAdapter

from harclip.messages import Event, Prediction
from harclip.wire.base import EntryId, ErrorMessage, WireModel, _Request

# ----------------------------------------------------------------------------- WebSockets


class EventMessage(WireModel):
    """A live event of the events app (`/ws/events`); `id` is its entry id, to resume after."""

    type: Literal["event"] = "event"
    stream_id: str
    id: str
    event: Event


class Subscribed(WireModel):
    """First message of a subscription: the position read from, per stream."""

    type: Literal["subscribed"] = "subscribed"
    positions: dict[str, str]


class PredictionMessage(WireModel):
    """A live prediction; `id` is its entry id, the position to resume after."""

    type: Literal["prediction"] = "prediction"
    stream_id: str
    id: str
    prediction: Prediction


class Heartbeat(WireModel):
    """Sent after a quiet `HARCLIP_API__WS_HEARTBEAT_S`; `at` in ms since epoch."""

    type: Literal["heartbeat"] = "heartbeat"
    at: int


class Dropped(WireModel):
    """The client read too slowly: `count` predictions dropped since the last report, `total` on
    this connection."""

    type: Literal["dropped"] = "dropped"
    count: int
    total: int
    message: str = ""


class Ack(WireModel):
    """An ingested frame is in Kafka."""

    type: Literal["ack"] = "ack"
    frame_id: str
    seq: int


ServerMessage = Annotated[
    Subscribed | PredictionMessage | EventMessage | Heartbeat | Dropped | Ack | ErrorMessage,
    Field(discriminator="type"),
]
_SERVER_MESSAGE: TypeAdapter[ServerMessage] = TypeAdapter(ServerMessage)


def parse_server_message(raw: str | bytes) -> ServerMessage:
    """One server -> client WebSocket message; pydantic's ValidationError if it is not one."""
    return _SERVER_MESSAGE.validate_json(raw)


class Resume(_Request):
    """Client -> server on a subscription: read from after `after` from now on (one entry id, or
    one per stream on the all-streams socket)."""

    type: Literal["resume"] = "resume"
    after: EntryId | dict[str, EntryId] = "0-0"
