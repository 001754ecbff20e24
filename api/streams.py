"""Live and historical reads: GET /streams, /streams/{id}/latest, /streams/{id}/frame (Redis) and
/streams/{id}/history (Elasticsearch: time range, label, min score, pages)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Response

from api.auth import requires
from api.errors import error_responses
from api.gate import GatedRoute
from api.runtime import ClientsDep, SettingsDep
from harclip.errors import MessageError
from harclip.ids import STREAM_ID_RULE, check_source_stream_id, check_stream_id
from harclip.wire import ApiError, Prediction, PredictionPage, StreamInfo, StreamList

router = APIRouter(
    tags=["streams"], dependencies=[Depends(requires("read"))], route_class=GatedRoute
)

MAX_MS = 2**53  # upper bound of accepted times, ms since epoch


def checked_stream_id(value: str) -> str:
    """`value` if it is a valid stream id (`harclip.ids`), else 422 `invalid_stream_id`."""
    try:
        return check_stream_id(value)
    except MessageError as e:
        raise ApiError(422, "invalid_stream_id", str(e)) from None


def checked_source_stream_id(value: str) -> str:
    """`checked_stream_id` for a stream frames are sent to: the reserved `*` is refused too."""
    try:
        return check_source_stream_id(value)
    except MessageError as e:
        raise ApiError(422, "invalid_stream_id", str(e)) from None


async def _stream_id_path(
    stream_id: Annotated[
        str, Path(min_length=1, max_length=128, description=f"stream id ({STREAM_ID_RULE})",
                  examples=["cam-1"])
    ],
) -> str:  # fmt: skip
    return checked_stream_id(stream_id)


async def _stream_id_query(
    stream_id: Annotated[
        str | None, Query(min_length=1, max_length=128, description="only this stream")
    ] = None,
) -> str | None:
    return None if stream_id is None else checked_stream_id(stream_id)


async def _cursor_query(
    cursor: Annotated[
        str | None, Query(max_length=300, description="`next` of the last page")
    ] = None,
) -> str | None:
    """A page cursor this API made (`next`), else 422 `invalid_cursor`."""
    from harclip.io.search import decode_cursor

    if cursor is not None:
        try:
            decode_cursor(cursor)
        except MessageError as e:
            raise ApiError(422, "invalid_cursor", str(e)) from None
    return cursor


StreamId = Annotated[str, Depends(_stream_id_path)]
StreamIdQ = Annotated[str | None, Depends(_stream_id_query)]
StartMs = Annotated[
    int | None, Query(ge=0, le=MAX_MS, description="from (inclusive), ms since epoch")
]
EndMs = Annotated[
    int | None, Query(ge=0, le=MAX_MS, description="until (exclusive), ms since epoch")
]
LabelQ = Annotated[str | None, Query(min_length=1, max_length=100, description="only this label")]
PageSize = Annotated[int, Query(ge=1, le=1000, description="page size")]
Cursor = Annotated[str | None, Depends(_cursor_query)]
MinScore = Annotated[float | None, Query(ge=0, le=1, description="only predictions scored >= this")]


@router.get(
    "/streams",
    response_model=StreamList,
    summary="Streams by last-seen time",
    responses=error_responses(401, 403, 429, 503),
)
async def list_streams(
    clients: ClientsDep,
    settings: SettingsDep,
    since_ms: Annotated[int | None, Query(ge=0, le=MAX_MS, description="seen at or after")] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> StreamList:
    from harclip.io import store

    rows = await store.list_streams(clients.redis(), settings.redis, since_ms=since_ms, limit=limit)
    return StreamList(streams=[StreamInfo(stream_id=sid, last_seen=ms) for sid, ms in rows])


@router.get(
    "/streams/{stream_id}/latest",
    response_model=Prediction,
    summary="The latest prediction of a stream",
    responses=error_responses(401, 403, 404, 422, 429, 503),
)
async def latest(stream_id: StreamId, clients: ClientsDep, settings: SettingsDep) -> Prediction:
    from harclip.io import store

    pred = await store.read_latest(clients.redis(), settings.redis, stream_id)
    if pred is None:
        raise ApiError(404, "not_found", f"no prediction for stream {stream_id!r}")
    return pred


@router.get(
    "/streams/{stream_id}/frame",
    summary="The latest frame of a stream (JPEG)",
    response_class=Response,
    responses={
        200: {"content": {"image/jpeg": {}}, "description": "the encoded frame"},
        **error_responses(401, 403, 404, 422, 429, 503),
    },
)
async def frame(stream_id: StreamId, clients: ClientsDep, settings: SettingsDep) -> Response:
    from harclip.io import store
    from harclip.model.imageio import sniff_format

    data = await store.read_frame(clients.redis(), settings.redis, stream_id)
    if data is None:
        raise ApiError(404, "not_found", f"no recent frame for stream {stream_id!r}")
    fmt = sniff_format(data) or "jpeg"
    return Response(data, media_type=f"image/{fmt}", headers={"Cache-Control": "no-store"})


@router.get(
    "/streams/{stream_id}/history",
    response_model=PredictionPage,
    summary="Past predictions of a stream (newest first, paged)",
    responses=error_responses(401, 403, 422, 429, 503),
)
async def history(
    stream_id: StreamId,
    clients: ClientsDep,
    settings: SettingsDep,
    start_ms: StartMs = None,
    end_ms: EndMs = None,
    label: LabelQ = None,
    min_score: MinScore = None,
    size: PageSize = 50,
    cursor: Cursor = None,
) -> PredictionPage:
    from harclip.io import search

    return await search.history(
        await clients.search_client(),
        settings.elasticsearch,
        stream_id=stream_id,
        start_ms=start_ms,
        end_ms=end_ms,
        label=label,
        min_score=min_score,
        size=size,
        cursor=cursor,
    )
