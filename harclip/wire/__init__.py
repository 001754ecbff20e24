"""What crosses HTTP and WebSockets between the API and its clients: one pydantic model per body
and per message, declared by `api/` as response models and returned by `harclip.client`.

A new endpoint adds its response (and request) model here, a route in `api/` that declares it,
one builder in `harclip/client/_requests.py` and one line in each client face.

WebSocket messages carry a `type`; `ServerMessage` is their discriminated union (read it with
`parse_server_message`). Errors, over HTTP or a WebSocket, always carry an `ErrorDetail`
(`code` for programs, `message` for people); WebSocket errors also carry the HTTP-like
`status` the same failure would get over HTTP, so a client never guesses it from the code.
"""

from __future__ import annotations

from harclip.messages import LabelScore, ModelRef, Prediction
from harclip.wire.base import (
    ApiError,
    EntryId,
    ErrorBody,
    ErrorDetail,
    ErrorMessage,
    WireModel,
)
from harclip.wire.feedback import (
    FeedbackCount,
    FeedbackCounts,
    FeedbackPage,
    FeedbackRequest,
)
from harclip.wire.http import (
    EventPage,
    Health,
    LabelSet,
    LabelSetRequest,
    PredictionPage,
    PredictLatency,
    PredictManyResponse,
    PredictRequest,
    PredictResponse,
    Readiness,
    RulesDoc,
    RulesRequest,
    SearchHit,
    SearchResponse,
    ServiceInfo,
    StreamInfo,
    StreamList,
    frame_thumbnail_path,
)
from harclip.wire.ws import (
    Ack,
    Dropped,
    EventMessage,
    Heartbeat,
    PredictionMessage,
    Resume,
    ServerMessage,
    Subscribed,
    parse_server_message,
)

__all__ = [
    "Ack",
    "ApiError",
    "Dropped",
    "EntryId",
    "ErrorBody",
    "ErrorDetail",
    "ErrorMessage",
    "EventMessage",
    "EventPage",
    "FeedbackCount",
    "FeedbackCounts",
    "FeedbackPage",
    "FeedbackRequest",
    "Health",
    "Heartbeat",
    "LabelScore",
    "LabelSet",
    "LabelSetRequest",
    "ModelRef",
    "PredictLatency",
    "PredictManyResponse",
    "PredictRequest",
    "PredictResponse",
    "Prediction",
    "PredictionMessage",
    "PredictionPage",
    "Readiness",
    "Resume",
    "RulesDoc",
    "RulesRequest",
    "SearchHit",
    "SearchResponse",
    "ServerMessage",
    "ServiceInfo",
    "StreamInfo",
    "StreamList",
    "Subscribed",
    "WireModel",
    "frame_thumbnail_path",
    "parse_server_message",
]
