"""Evidence, served from the object store: GET /events/{id}/snapshot (JPEG), /thumbnail (JPEG)
and /clip (MP4 or WebM, with HTTP Range requests so a browser can seek), under
the same auth as the event reads. A range answer (206) carries at most `CHUNK` bytes, and a whole
object (200) is streamed `CHUNK` bytes at a time, so no clip is ever held whole in memory.
404 names why there is nothing to serve: no such event, `pending` (not written yet) or the
event's `evidence.missing` reason (e.g. `frames_expired`); 503 when the store does not answer.
GET /frames/{frame_id}/thumbnail serves the worker's keyframe thumbnail a search hit links."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Path
from fastapi.responses import Response, StreamingResponse

from api.auth import requires
from api.errors import error_responses
from api.gate import GatedRoute
from api.runtime import ClientsDep, SettingsDep
from harclip.io.evidence import (
    EvidenceKind,
    NoEvidence,
    evidence_key,
    find_event,
    media_type,
    parse_range,
)
from harclip.io.objects import ObjectStore, RangeNotSatisfiable
from harclip.wire import ApiError

CHUNK = 1024 * 1024  # bytes per range answer and per read of a streamed whole object

router = APIRouter(
    tags=["events"], dependencies=[Depends(requires("read"))], route_class=GatedRoute
)

EventId = Annotated[str, Path(min_length=1, max_length=128, description="the event's `event_id`")]
RangeH = Annotated[
    str | None, Header(description="one byte range, e.g. `bytes=0-1048575` (206 answer)")
]
_RESPONSES = error_responses(401, 403, 404, 416, 422, 429, 503)


@router.get(
    "/events/{event_id}/snapshot",
    response_class=Response,
    summary="An event's snapshot (JPEG): its best frame as captured",
    responses={200: {"content": {"image/jpeg": {}}}, **_RESPONSES},
)
async def event_snapshot(
    event_id: EventId, clients: ClientsDep, settings: SettingsDep, range: RangeH = None
) -> Response:
    return await _serve(clients, settings, event_id, "snapshot", range)


@router.get(
    "/events/{event_id}/thumbnail",
    response_class=Response,
    summary="An event's thumbnail (small JPEG of its snapshot)",
    responses={200: {"content": {"image/jpeg": {}}}, **_RESPONSES},
)
async def event_thumbnail(
    event_id: EventId, clients: ClientsDep, settings: SettingsDep, range: RangeH = None
) -> Response:
    return await _serve(clients, settings, event_id, "thumbnail", range)


@router.get(
    "/events/{event_id}/clip",
    response_class=Response,
    summary="An event's clip (MP4 or WebM), with Range requests",
    responses={200: {"content": {"video/mp4": {}, "video/webm": {}}}, 206: {"description":
               "the byte range asked for (at most 1 MiB; ask again for the rest)"}, **_RESPONSES},
)  # fmt: skip
async def event_clip(
    event_id: EventId, clients: ClientsDep, settings: SettingsDep, range: RangeH = None
) -> Response:
    """The clip from the pre-roll before the event to the post-roll after it. With
    `Range: bytes=first-last` the answer is 206 with `Content-Range` (at most 1 MiB of it);
    416 when the range starts past the end."""
    return await _serve(clients, settings, event_id, "clip", range)


@router.get(
    "/frames/{frame_id}/thumbnail",
    response_class=Response,
    tags=["search"],
    summary="A stored frame's thumbnail (~160 px JPEG of its keyframe)",
    responses={200: {"content": {"image/jpeg": {}}}, **_RESPONSES},
)
async def frame_thumbnail(
    frame_id: Annotated[str, Path(min_length=1, max_length=64, description="a `frame_id`")],
    clients: ClientsDep, settings: SettingsDep, range: RangeH = None,
) -> Response:  # fmt: skip
    """The thumbnail the worker stored for the frame's keyframe (search hits link it as
    `thumbnail`); 404 when the frame is not in the history or has no thumbnail."""
    from harclip.io.evidence import frame_thumbnail as find_thumbnail

    key = await find_thumbnail(await clients.search_client(), settings.elasticsearch, frame_id)
    if key is False:
        raise ApiError(404, "not_found", f"frame {frame_id!r} is not in the history")
    if key is None:
        raise ApiError(404, "no_thumbnail", f"frame {frame_id!r} has no thumbnail")
    return await serve_object(await clients.objects(), key, "image/jpeg", range)


async def _serve(
    clients: ClientsDep, settings: SettingsDep, event_id: str, kind: EvidenceKind,
    range_header: str | None,
) -> Response:  # fmt: skip
    event = await find_event(await clients.search_client(), settings.elasticsearch, event_id)
    if event is None:
        raise ApiError(404, "not_found", f"no event {event_id!r}")
    key = evidence_key(event, kind)
    if isinstance(key, NoEvidence):
        raise ApiError(404, key.reason, key.message)
    return await serve_object(await clients.objects(), key, media_type(key, kind), range_header)


async def serve_object(
    store: ObjectStore, key: str, content_type: str, range_header: str | None
) -> Response:
    """The object at `key`: one bounded range (206) when asked for, else the whole object
    streamed in chunks (200). 404 when the object is gone (e.g. removed by retention)."""
    gone = ApiError(404, "not_found", f"the object {key!r} is not in the object store")
    headers = {"Accept-Ranges": "bytes", "Cache-Control": "private, max-age=300"}
    wanted = parse_range(range_header)
    if wanted is None:
        info = await store.head(key)
        if info is None:
            raise gone
        headers["Content-Length"] = str(info.size)
        return StreamingResponse(_chunks(store, key, info.size), headers=headers,
                                 media_type=content_type)  # fmt: skip
    first, last = wanted
    if first is None:  # the last `last` bytes
        info = await store.head(key)
        if info is None:
            raise gone
        first, last = max(0, info.size - (last or 0)), None
        if info.size == 0 or wanted[1] == 0:
            raise _unsatisfiable(key, info.size)
    end = first + CHUNK - 1 if last is None else min(last, first + CHUNK - 1)
    try:
        body = await store.get(key, first, end)
    except RangeNotSatisfiable as e:
        raise _unsatisfiable(key, e.total_size) from None
    if body is None:
        raise gone
    headers["Content-Range"] = f"bytes {body.start}-{body.end}/{body.total_size}"
    return Response(body.data, 206, headers=headers, media_type=content_type)


def _unsatisfiable(key: str, size: int) -> ApiError:
    return ApiError(
        416, "range_not_satisfiable", f"the range is past the end of {key!r} ({size} bytes)",
        {"Content-Range": f"bytes */{size}"},
    )  # fmt: skip


async def _chunks(store: ObjectStore, key: str, size: int) -> AsyncIterator[bytes]:
    at = 0
    while at < size:
        body = await store.get(key, at, min(size, at + CHUNK) - 1)
        if body is None or not body.data:  # removed meanwhile: the answer ends short
            return
        yield body.data
        at += len(body.data)
