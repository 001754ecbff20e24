"""The messages that cross component boundaries: Frame (Kafka headers + JPEG bytes) and
Prediction (JSON on Kafka, in Redis and in Elasticsearch), with their encodings.

Decoding never trusts its input: anything malformed raises `MessageError` naming the field.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from harclip.errors import MessageError
from harclip.ids import check_stream_id

FRAME_SCHEMA = "harclip.frame/1"
PREDICTION_SCHEMA = "harclip.prediction/1"

Headers = list[tuple[str, bytes]]

_FRAME_HEADERS = frozenset(
    ("frame_id", "stream_id", "seq", "captured_at", "content_type", "schema", "traceparent")
)
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def now_ms() -> int:
    """Wall-clock time in milliseconds since the epoch (UTC)."""
    return time.time_ns() // 1_000_000


def new_frame_id(at_ms: int | None = None) -> str:
    """A 26-character ULID: sortable by creation time (ms), unique by 80 random bits."""
    ms = now_ms() if at_ms is None else at_ms
    n = (ms << 80) | int.from_bytes(os.urandom(10), "big")
    return "".join(_CROCKFORD[(n >> (5 * i)) & 31] for i in range(25, -1, -1))


def _check_id(name: str, value: str) -> str:
    """Frame and stream ids follow the one stream-id rule (`harclip.ids`)."""
    return check_stream_id(value, name)


@dataclass(frozen=True, slots=True)
class Frame:
    """One image on its way to a worker. `data` holds the encoded image (JPEG or PNG) bytes."""

    frame_id: str
    stream_id: str
    seq: int
    captured_at: int  # ms since epoch, UTC
    data: bytes
    content_type: str = "image/jpeg"
    traceparent: str | None = None

    def headers(self) -> Headers:
        """Kafka headers as DESIGN.md fixes them."""
        h: Headers = [
            ("frame_id", self.frame_id.encode()),
            ("stream_id", self.stream_id.encode()),
            ("seq", str(self.seq).encode()),
            ("captured_at", str(self.captured_at).encode()),
            ("content_type", self.content_type.encode()),
            ("schema", FRAME_SCHEMA.encode()),
        ]
        if self.traceparent:
            h.append(("traceparent", self.traceparent.encode()))
        return h

    @classmethod
    def from_kafka(
        cls, key: bytes | None, value: bytes | None, headers: Sequence[tuple[str, bytes]]
    ) -> Frame:
        """Decode a Kafka record; raises `MessageError` naming the first bad or missing header."""
        h: dict[str, str] = {}
        for k, v in headers:
            if k not in _FRAME_HEADERS:
                continue  # others (tracing, brokers' own) are not ours to judge
            try:
                h[k] = v.decode() if v is not None else ""
            except UnicodeDecodeError:
                raise MessageError(f"header {k!r} is not UTF-8") from None
        schema = h.get("schema")
        if schema is None:
            raise MessageError("missing header 'schema'")
        if schema != FRAME_SCHEMA:
            raise MessageError(f"unsupported schema {schema!r} (expected {FRAME_SCHEMA!r})")
        for name in ("frame_id", "stream_id", "seq", "captured_at"):
            if name not in h:
                raise MessageError(f"missing header {name!r}")
        try:
            seq = int(h["seq"])
            captured_at = int(h["captured_at"])
        except ValueError:
            raise MessageError("headers 'seq' and 'captured_at' must be integers") from None
        if seq < 0 or captured_at < 0:
            raise MessageError("headers 'seq' and 'captured_at' must be non-negative")
        if not value:
            raise MessageError("empty frame: the record has no image bytes")
        return cls(
            frame_id=_check_id("frame_id", h["frame_id"]),
            stream_id=_check_id("stream_id", h["stream_id"]),
            seq=seq,
            captured_at=captured_at,
            data=value,
            content_type=h.get("content_type", "image/jpeg"),
            traceparent=h.get("traceparent"),
        )


def header_value(headers: Iterable[tuple[str, bytes]], name: str) -> str | None:
    """One header's value as text, or None (best effort, for error reports)."""
    for k, v in headers:
        if k == name and v is not None:
            return v.decode(errors="replace")
    return None


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class LabelScore(_Model):
    label: str
    score: float


class ModelRef(_Model):
    name: str
    version: str
    head_version: int
    engine: str | None = Field(
        None,
        description="the engine that embedded the frame, e.g. onnx-int8, onnx/cuda, "
        "torch/fp16/cuda, tensorrt/fp16 (None in documents written before it was recorded)",
    )


class Latency(_Model):
    queue: float = Field(description="captured_at -> batch start, ms")
    infer: float = Field(description="engine + head for the batch, ms")
    total: float = Field(description="captured_at -> prediction built, ms")


class Prediction(_Model):
    """What a worker (or the API) says about one frame."""

    schema_: str = Field(PREDICTION_SCHEMA, alias="schema")
    frame_id: str
    stream_id: str
    seq: int
    captured_at: int
    inferred_at: int
    label: str
    score: float
    top_k: list[LabelScore]
    model: ModelRef
    latency_ms: Latency

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    def to_json(self) -> bytes:
        return self.model_dump_json(by_alias=True).encode()

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True)

    @classmethod
    def from_json(cls, raw: bytes | str) -> Prediction:
        try:
            p = cls.model_validate_json(raw)
        except ValidationError as e:
            err = e.errors()[0]
            loc = ".".join(str(x) for x in err["loc"])
            raise MessageError(f"invalid Prediction: {loc}: {err['msg']}") from None
        if p.schema_ != PREDICTION_SCHEMA:
            raise MessageError(f"unsupported schema {p.schema_!r} (expected {PREDICTION_SCHEMA!r})")
        return p
