"""Search the history by meaning: `GET /search?q=TEXT` (the CLIP text embedding of the query, from
the ONNX text encoder, no torch) and `POST /search/similar` (a frame's stored embedding, or an
uploaded image's), against the keyframe embeddings in Elasticsearch (kNN), with the history
filters. Only the embedding space of this API's model is searched: vectors of other models are
not comparable; the response names the space."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, File, Query, UploadFile

from api.auth import requires
from api.errors import error_responses
from api.gate import GatedRoute
from api.overload import bounded
from api.runtime import ClientsDep, PredictorDep, SettingsDep
from api.streams import EndMs, LabelQ, MinScore, StartMs, StreamIdQ
from harclip.wire import ApiError, SearchResponse

router = APIRouter(
    tags=["search"], dependencies=[Depends(requires("read"))], route_class=GatedRoute
)


@router.get(
    "/search",
    response_model=SearchResponse,
    summary="Frames that match a text (e.g. 'someone riding a bike')",
    responses=error_responses(401, 403, 422, 429, 503),
)
async def search_text(
    predictor: PredictorDep,
    clients: ClientsDep,
    settings: SettingsDep,
    q: Annotated[
        str,
        Query(
            min_length=1,
            max_length=300,
            description="what to look for",
            examples=["someone riding a bike"],
        ),
    ],
    k: Annotated[int, Query(ge=1, le=100, description="hits to return")] = 10,
    stream_id: StreamIdQ = None,
    start_ms: StartMs = None,
    end_ms: EndMs = None,
    label: LabelQ = None,
    min_score: MinScore = None,
) -> SearchResponse:
    """Best matches first; `similarity` is the cosine of text and frame embeddings."""
    from harclip.io import search

    encoder = await predictor.text_encoder()
    vector = (await asyncio.to_thread(encoder.encode, [q]))[0]  # [1, D] -> [D]
    hits = await search.knn(
        await clients.search_client(), settings.elasticsearch, predictor.space, vector, k=k,
        stream_id=stream_id, start_ms=start_ms, end_ms=end_ms, label=label, min_score=min_score,
    )  # fmt: skip
    return SearchResponse(query=q, space=predictor.space.slug, hits=hits)


@router.post(
    "/search/similar",
    response_model=SearchResponse,
    dependencies=[Depends(bounded)],  # an upload is decoded and embedded as in /predict
    summary="Frames that look like a stored frame or an uploaded image",
    responses=error_responses(401, 403, 404, 413, 415, 422, 429, 503),
)
async def search_similar(
    predictor: PredictorDep,
    clients: ClientsDep,
    settings: SettingsDep,
    frame_id: Annotated[
        str | None,
        Query(min_length=1, max_length=64, description="a frame from the history (`frame_id`)"),
    ] = None,
    file: Annotated[
        UploadFile | None, File(description="an image to look for (same limits as /predict)")
    ] = None,
    k: Annotated[int, Query(ge=1, le=100, description="hits to return")] = 10,
    stream_id: StreamIdQ = None,
    start_ms: StartMs = None,
    end_ms: EndMs = None,
    label: LabelQ = None,
    min_score: MinScore = None,
) -> SearchResponse:
    """Give exactly one of `frame_id` (a frame in the history of this API's model: its own
    embedding if it is a keyframe, else its keyframe's) or `file` (multipart, embedded by this
    API's model, as /predict/image). Best matches first, with the history filters."""
    from harclip.io import search

    if (frame_id is None) == (file is None):
        raise ApiError(422, "invalid_request", "give exactly one of 'frame_id' or a 'file'")
    es = await clients.search_client()
    if frame_id is not None:
        found = await search.frame_embedding(es, settings.elasticsearch, predictor.space, frame_id)
        if found is None:
            raise ApiError(
                404, "not_found",
                f"frame {frame_id!r} is not in the history of model {predictor.space.slug} "
                "(unknown, removed by retention, or made by another model)",
            )  # fmt: skip
        vector, query = found[1], f"frame:{frame_id}"
    else:
        assert file is not None
        name = file.filename or "file"
        (scored,) = await predictor.predict([(name, await file.read())], 1)
        vector, query = scored.embedding, f"image:{name}"
    hits = await search.knn(
        es, settings.elasticsearch, predictor.space, vector, k=k, stream_id=stream_id,
        start_ms=start_ms, end_ms=end_ms, label=label, min_score=min_score,
    )  # fmt: skip
    return SearchResponse(query=query, space=predictor.space.slug, hits=hits)
