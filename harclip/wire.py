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

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter, model_validator

from harclip.errors import HarclipError
from harclip.messages import LabelScore, ModelRef, Prediction

__all__ = [
    "Ack",
    "ApiError",
    "Dropped",
    "EntryId",
    "ErrorBody",
    "ErrorDetail",
    "ErrorMessage",
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
    "SearchHit",
    "SearchResponse",
    "ServerMessage",
    "ServiceInfo",
    "StreamInfo",
    "StreamList",
    "Subscribed",
    "parse_server_message",
]

_MODEL_EXAMPLE: dict[str, Any] = {"name": "clip-vit-b-32-har", "version": "1", "head_version": 3}

# A Redis Stream entry id ("<ms>-<seq>", or "<ms>"): a resume position of a subscription. ASCII
# digits only: `\d` would also take other scripts' digits, which Redis refuses.
EntryId = Annotated[str, StringConstraints(pattern=r"^[0-9]{1,20}(-[0-9]{1,20})?$", max_length=41)]


class WireModel(BaseModel):
    """Base of every wire type: immutable. Unknown fields are ignored, so a client keeps reading
    a newer server that added some."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    def to_json(self) -> str:
        """The JSON text sent on the wire (field aliases such as Prediction's `schema` applied)."""
        return self.model_dump_json(by_alias=True)


class _Request(WireModel):
    """A body a client sends: unknown fields are refused (422), so a typo is not ignored."""

    model_config = ConfigDict(frozen=True, extra="forbid")


# ----------------------------------------------------------------------------- errors


class ErrorDetail(WireModel):
    code: str = Field(examples=["invalid_image"])
    message: str = Field(examples=["image: not a JPEG, PNG, WebP, BMP or GIF image"])


class ErrorBody(WireModel):
    """Every HTTP error answer: a stable machine `code` and a message for people."""

    error: ErrorDetail


class ApiError(HarclipError):
    """An expected failure of an API call, with its HTTP `status`, machine `code`, `message` for
    people and the response `headers` to send (e.g. Retry-After). The API raises it to answer;
    the client raises it (as a subclass by status, see `harclip.client.errors`) when answered."""

    def __init__(
        self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})

    @property
    def detail(self) -> ErrorDetail:
        return ErrorDetail(code=self.code, message=self.message)

    def body(self) -> ErrorBody:
        """The HTTP answer's body."""
        return ErrorBody(error=self.detail)

    def message_for_ws(self, seq: int | None = None) -> ErrorMessage:
        """The same failure as a WebSocket `error` message (`seq`: the ingest frame it is about)."""
        return ErrorMessage(status=self.status, error=self.detail, seq=seq)


# ----------------------------------------------------------------------------- predict


class PredictRequest(_Request):
    """One image, as base64 (`image`) or as an http(s) URL (`image_url`); exactly one of them."""

    image: str | None = Field(
        None,
        description="base64 of the encoded image (JPEG, PNG, WebP, BMP, GIF); a "
        "`data:image/...;base64,` prefix is accepted",
        max_length=20_000_000,
        examples=["/9j/4AAQSkZJRgABAQAAAQABAAD..."],
    )
    image_url: str | None = Field(
        None,
        description="public http(s) URL of an image (private addresses are refused)",
        max_length=2048,
        examples=["https://example.com/person-on-a-bike.jpg"],
    )
    top_k: int | None = Field(
        None, ge=1, le=100, description="labels to return (default: HARCLIP_MODEL__TOP_K)"
    )

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        json_schema_extra={"examples": [{"image_url": "https://example.com/bike.jpg", "top_k": 3}]},
    )

    @model_validator(mode="after")
    def _one_source(self) -> PredictRequest:
        if (self.image is None) == (self.image_url is None):
            raise ValueError("give exactly one of 'image' (base64) or 'image_url'")
        return self


class PredictLatency(WireModel):
    decode: float = Field(description="decode + resize, ms")
    queue: float = Field(description="waiting for a batch, ms")
    infer: float = Field(description="engine + head for the batch, ms")
    total: float = Field(description="request received -> result, ms")


class PredictResponse(WireModel):
    """The prediction for one image: top label, its score and the top-k list (best first)."""

    label: str = Field(examples=["cycling"])
    score: float = Field(description="softmax probability, 0-1", examples=[0.91])
    predictions: list[LabelScore]
    model: ModelRef
    latency_ms: PredictLatency
    filename: str | None = Field(None, description="the uploaded file's name (multipart only)")

    model_config = ConfigDict(
        frozen=True,
        extra="ignore",
        json_schema_extra={
            "examples": [
                {
                    "label": "cycling",
                    "score": 0.91,
                    "predictions": [
                        {"label": "cycling", "score": 0.91},
                        {"label": "running", "score": 0.04},
                    ],
                    "model": _MODEL_EXAMPLE,
                    "latency_ms": {"decode": 2.1, "queue": 1.0, "infer": 9.5, "total": 13.0},
                    "filename": None,
                }
            ]
        },
    )


class PredictManyResponse(WireModel):
    """One result per uploaded file, in upload order."""

    results: list[PredictResponse]


# ----------------------------------------------------------------------------- service


class ServiceInfo(WireModel):
    service: str = Field(examples=["harclip-api"])
    version: str = Field(examples=["0.1.0"])
    model: ModelRef
    base_model: str = Field(examples=["openai/clip-vit-base-patch32"])
    engine: str = Field(examples=["onnx"])
    image_size: int = Field(examples=[224])
    labels: list[str] = Field(
        description="the label set in use; empty for a caller who may not read it (auth on and "
        "no valid key)",
        examples=[["calling", "cycling", "running"]],
    )
    auth: bool = Field(description="whether API keys are required")


class Health(WireModel):
    status: str = Field(examples=["ok"])


class Readiness(WireModel):
    ready: bool
    checks: dict[str, str] = Field(
        examples=[{"model": "ok", "redis": "ok", "elasticsearch": "ok", "kafka": "ok"}]
    )


# ----------------------------------------------------------------------------- reads


class StreamInfo(WireModel):
    stream_id: str = Field(examples=["cam-1"])
    last_seen: int = Field(description="last prediction, ms since epoch", examples=[1764223200000])


class StreamList(WireModel):
    """Streams, most recently seen first."""

    streams: list[StreamInfo]


class PredictionPage(WireModel):
    """A page of predictions, newest first; pass `next` as `cursor` for the following page."""

    items: list[Prediction]
    next: str | None = Field(None, description="cursor of the next page, or null at the end")


class SearchHit(WireModel):
    """A keyframe whose embedding is near the query's, and the frames it stands for (itself and
    the following frames of its stream that were close enough to keep no embedding of their own).
    """

    similarity: float = Field(description="cosine of the query and keyframe embeddings, -1..1")
    prediction: Prediction = Field(description="the keyframe's prediction")
    frames: int = Field(1, description="frames this keyframe stands for, itself included")
    first_at: int = Field(0, description="captured_at of the first of them, ms since epoch")
    last_at: int = Field(0, description="captured_at of the last of them, ms since epoch")


class SearchResponse(WireModel):
    """Best matches first, from the embedding space of the API's model."""

    query: str = Field(examples=["someone riding a bike"])
    space: str = Field(
        "", description="the embedding space searched (model, version, size): vectors of other "
        "models are not comparable, so their frames are not searched",
        examples=["clip-vit-b-32-har-v1-512d"],
    )  # fmt: skip
    hits: list[SearchHit]


# ----------------------------------------------------------------------------- labels


class LabelSet(WireModel):
    """The label set (head) in use."""

    version: int = Field(examples=[3])
    kind: str = Field(examples=["zero-shot"])
    labels: list[str] = Field(examples=[["cycling", "running"]])
    prompts: dict[str, list[str]] = Field(
        examples=[{"cycling": ["a photo of a person riding a bike."]}]
    )


class LabelSetRequest(_Request):
    """New labels: names, with optional prompts per name (a name without prompts gets the
    default prompt ensemble, e.g. "a photo of a person riding a bike.")."""

    labels: list[str] = Field(min_length=1, max_length=200, examples=[["cycling", "skateboarding"]])
    prompts: dict[str, list[str]] = Field(
        default_factory=dict, examples=[{"skateboarding": ["a photo of a person on a skateboard."]}]
    )

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "labels": ["cycling", "skateboarding"],
                    "prompts": {"skateboarding": ["a photo of a person on a skateboard."]},
                }
            ]
        },
    )


# ----------------------------------------------------------------------------- WebSockets


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


class ErrorMessage(WireModel):
    """A failure on a WebSocket; `status` is what HTTP would have answered, `seq` the ingest
    frame it is about (None when it is about the connection)."""

    type: Literal["error"] = "error"
    status: int
    error: ErrorDetail
    seq: int | None = None

    def exception(self) -> ApiError:
        return ApiError(self.status, self.error.code, self.error.message)


ServerMessage = Annotated[
    Subscribed | PredictionMessage | Heartbeat | Dropped | Ack | ErrorMessage,
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
