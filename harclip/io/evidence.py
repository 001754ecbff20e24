"""Reading evidence back: an event by id from Elasticsearch (its `evidence` says which objects
hold its snapshot, thumbnail and clip), a stored frame's keyframe thumbnail, the object-store
key of what a request asks for, and the HTTP `Range` header of a byte-range read
(`parse_range`). The API serves the bytes (`api.evidence`); the events app and the worker write
them."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from pydantic import ValidationError

from harclip.config import ElasticsearchSettings
from harclip.errors import MessageError
from harclip.io.es import es_errors
from harclip.messages import Event

if TYPE_CHECKING:
    from elasticsearch import AsyncElasticsearch

EvidenceKind = Literal["snapshot", "thumbnail", "clip"]

CLIP_TYPES = {"mp4": "video/mp4", "webm": "video/webm"}


@es_errors("read")
async def find_event(
    es: AsyncElasticsearch, s: ElasticsearchSettings, event_id: str
) -> Event | None:
    """The event document `event_id` (its newest version: `_id` is the event id), or None."""
    resp = await es.search(
        index=s.events_index,  # the alias: every day
        ignore_unavailable=True,
        allow_no_indices=True,
        size=1,
        query={"ids": {"values": [event_id]}},
    )
    hits = resp["hits"]["hits"]
    if not hits:
        return None
    try:
        return Event.model_validate(hits[0]["_source"])
    except ValidationError as e:
        err = e.errors()[0]
        loc = ".".join(str(x) for x in err["loc"])
        raise MessageError(f"invalid Event in Elasticsearch: {loc}: {err['msg']}") from None


@es_errors("read")
async def frame_thumbnail(
    es: AsyncElasticsearch, s: ElasticsearchSettings, frame_id: str
) -> str | Literal[False] | None:
    """The object key of the thumbnail that stands for a stored frame: its own (a keyframe's),
    else its keyframe's; None when it has none (thumbnails off, or written before them), False
    when the frame is not in the history (unknown, or removed by retention)."""
    found = await _source(es, s, frame_id)
    if found is None:
        return False
    key = found.get("thumbnail")
    keyframe = found.get("keyframe_id")
    if not key and keyframe and keyframe != frame_id:
        found = await _source(es, s, str(keyframe))
        key = None if found is None else found.get("thumbnail")
    return str(key) if key else None


async def _source(
    es: AsyncElasticsearch, s: ElasticsearchSettings, frame_id: str
) -> dict[str, object] | None:
    resp = await es.search(
        index=s.predictions_index,  # the alias: every model's indices, every day
        ignore_unavailable=True, allow_no_indices=True, size=1,
        query={"ids": {"values": [frame_id]}}, source={"includes": ["thumbnail", "keyframe_id"]},
    )  # fmt: skip
    hits = resp["hits"]["hits"]
    return dict(hits[0]["_source"]) if hits else None


@dataclass(frozen=True, slots=True)
class NoEvidence:
    """Why an event has no object of the kind asked for: `pending` (not written yet) or the
    event's `evidence.missing` reason (e.g. `frames_expired`)."""

    reason: str
    message: str


def evidence_key(event: Event, kind: EvidenceKind) -> str | NoEvidence:
    """The object key of the event's `kind`, or why there is none."""
    ev = event.evidence
    key = None if ev is None else getattr(ev, kind)
    if key:
        return str(key)
    if ev is not None and ev.missing is not None:
        return NoEvidence(
            ev.missing, f"event {event.event_id!r} has no {kind}: {ev.missing.replace('_', ' ')}"
        )
    return NoEvidence(
        "pending", f"event {event.event_id!r} has no {kind} yet (its evidence is being written)"
    )


def media_type(key: str, kind: EvidenceKind) -> str:
    """The content type of an evidence object: JPEG, or the clip's container by its extension."""
    if kind != "clip":
        return "image/jpeg"
    return CLIP_TYPES.get(key.rsplit(".", 1)[-1].lower(), "application/octet-stream")


_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def parse_range(header: str | None) -> tuple[int | None, int | None] | None:
    """(first, last) of a one-range `Range: bytes=...` header, inclusive: `bytes=a-b` → (a, b),
    `bytes=a-` → (a, None), `bytes=-n` (the last n bytes) → (None, n). None when there is no
    header or it is not one such range (several ranges, other units): the whole object is then
    served, as RFC 9110 lets a server ignore a Range it does not support."""
    if not header:
        return None
    m = _RANGE.match(header.strip().replace(" ", ""))
    if m is None or (not m[1] and not m[2]):
        return None
    first = int(m[1]) if m[1] else None
    last = int(m[2]) if m[2] else None
    if first is not None and last is not None and last < first:
        return None
    return first, last
