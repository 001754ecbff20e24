"""Frame: one image on its way to a worker (Kafka headers + the encoded image bytes), frame ids
(ULIDs) and the wall clock in ms.

Decoding never trusts its input: anything malformed raises `MessageError` naming the header.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from harclip.errors import MessageError
from harclip.ids import check_source_stream_id, check_stream_id

FRAME_SCHEMA = "harclip.frame/1"

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
            stream_id=check_source_stream_id(h["stream_id"], "stream_id"),
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
