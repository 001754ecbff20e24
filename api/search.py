"""GET /search?q=TEXT: the CLIP text embedding of the query (ONNX text encoder, no torch) against
the frame embeddings in Elasticsearch (kNN), with the history filters."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from api.auth import requires
from api.errors import error_responses
from api.runtime import RuntimeDep
from api.streams import EndMs, LabelQ, MinScore, StartMs
from harclip.wire import SearchResponse

router = APIRouter(tags=["search"], dependencies=[Depends(requires("read"))])


@router.get(
    "/search",
    response_model=SearchResponse,
    summary="Frames that match a text (e.g. 'someone riding a bike')",
    responses=error_responses(401, 403, 422, 429, 503),
)
async def search_text(
    rt: RuntimeDep,
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
    stream_id: Annotated[str | None, Query(min_length=1, max_length=128)] = None,
    start_ms: StartMs = None,
    end_ms: EndMs = None,
    label: LabelQ = None,
    min_score: MinScore = None,
) -> SearchResponse:
    """Best matches first; `similarity` is the cosine of text and frame embeddings."""
    from harclip.io import search

    encoder = await rt.text_encoder()
    vector = (await asyncio.to_thread(encoder.encode, [q]))[0]  # [1, D] -> [D]
    hits = await search.knn(
        await rt.search_client(),
        rt.settings.elasticsearch,
        rt.space,
        vector,
        k=k,
        stream_id=stream_id,
        start_ms=start_ms,
        end_ms=end_ms,
        label=label,
        min_score=min_score,
    )
    return SearchResponse(query=q, space=rt.space.slug, hits=hits)
