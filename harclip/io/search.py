"""Elasticsearch as the history store: bulk indexing of Predictions (with the embedding of
keyframes), history queries over every model's indices, and vector search (kNN) inside one
embedding space. Index names, templates and retention: `harclip.io.indices`. Documents use
`_id` = frame_id in the index of their capture day, so a replay overwrites.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import orjson
from elasticsearch import AsyncElasticsearch
from pydantic import ValidationError

from harclip.config import ElasticsearchSettings
from harclip.errors import MessageError, SinkRefused, SinkUnavailable
from harclip.io.es import TRANSIENT_TYPES, es_errors, transient_status
from harclip.io.indices import (
    EMBEDDING,
    EmbeddingSpace,
    daily_index,
    predictions_index,
    quantize,
    space_pattern,
)
from harclip.messages import Event, Prediction
from harclip.wire import EventPage, PredictionPage, SearchHit, frame_thumbnail_path

_MAX_CANDIDATES = 10_000  # Elasticsearch's limit for knn.num_candidates

Order = Literal["asc", "desc"]
SearchAfter = tuple[int, str]  # (captured_at ms, frame_id) of the last hit of a page


@dataclass(frozen=True, slots=True)
class Indexed:
    """One prediction as stored: the embedding only on keyframes; `keyframe_id` names the
    keyframe that stands for it (itself, on a keyframe)."""

    prediction: Prediction
    embedding: np.ndarray | None  # float32 [D]
    keyframe_id: str
    thumbnail: str | None = None  # object key of a keyframe's thumbnail, once written
    json: bytes | None = None  # the prediction's JSON if already made (read back, not re-dumped)


# ----------------------------------------------------------------------------- writes


@es_errors("write")
async def index_predictions(
    es: AsyncElasticsearch,
    s: ElasticsearchSettings,
    space: EmbeddingSpace,
    items: Sequence[Indexed],
) -> None:
    """Bulk-index predictions with their embeddings (float32 [D]); `_id` = frame_id, no refresh.

    If documents failed: `SinkUnavailable` when Elasticsearch was overloaded (retry the bulk),
    `SinkRefused` with frame_id -> reason when it rejected them for good.
    """
    if not items:
        return
    ops: list[dict[str, Any]] = []
    for item in items:
        pred, emb = item.prediction, item.embedding
        doc = orjson.loads(item.json) if item.json is not None else pred.to_dict()
        doc["keyframe_id"] = item.keyframe_id
        if item.thumbnail is not None:
            doc["thumbnail"] = item.thumbnail
        if emb is not None:  # a wrong size is refused by Elasticsearch, naming the frame
            doc[EMBEDDING] = quantize(emb)
        index = predictions_index(s, space, pred.captured_at)
        ops.append({"index": {"_index": index, "_id": pred.frame_id}})
        ops.append(doc)
    resp = await es.bulk(
        operations=ops, filter_path="errors,items.*.error,items.*._id,items.*.status"
    )
    if resp.get("errors"):
        _raise_item_errors(resp.body, len(items))


@es_errors("write")
async def index_events(
    es: AsyncElasticsearch, s: ElasticsearchSettings, events: Sequence[Event]
) -> None:
    """Bulk-index events into the daily index of their start (captured_at; the same day on a
    replay), `_id` = event_id, so a replayed or re-emitted event overwrites its own document.
    `SinkUnavailable` / `SinkRefused` as for predictions."""
    if not events:
        return
    ops: list[dict[str, Any]] = []
    for e in events:
        at = e.start if e.start is not None else e.emitted_at
        ops.append({"index": {"_index": daily_index(s, "events", at), "_id": e.event_id}})
        ops.append(e.to_dict())
    resp = await es.bulk(
        operations=ops, filter_path="errors,items.*.error,items.*._id,items.*.status"
    )
    if resp.get("errors"):
        _raise_item_errors(resp.body, len(events))


def _raise_item_errors(body: dict[str, Any], total: int) -> None:
    """`SinkUnavailable` if any failed document may succeed later (429, 5xx: the whole bulk is
    retried, `_id` makes that harmless), else `SinkRefused` naming every refused frame."""
    failed = [item for row in body.get("items", []) for item in row.values() if "error" in item]
    first = failed[0]
    summary = (
        f"Elasticsearch rejected {len(failed)} of {total} documents; first {first.get('_id')}: "
        f"{_item_reason(first)}"
    )
    if any(_transient_item(item) for item in failed):
        raise SinkUnavailable(summary)
    raise SinkRefused(summary, {str(item.get("_id")): _item_reason(item) for item in failed})


def _transient_item(item: dict[str, Any]) -> bool:
    return transient_status(item.get("status", 500)) or _item_reason(item).startswith(
        TRANSIENT_TYPES
    )


def _item_reason(item: dict[str, Any]) -> str:
    err = item.get("error") or {}
    return f"{err.get('type')}: {err.get('reason')}"


# ----------------------------------------------------------------------------- reads


_MAX_MS = 2**53  # largest time a cursor may name, ms since epoch


def encode_cursor(after: SearchAfter) -> str:
    """The opaque page cursor for a (captured_at ms, frame_id) position."""
    return f"{after[0]}_{after[1]}"


def decode_cursor(cursor: str) -> SearchAfter:
    """The position a cursor of `encode_cursor` names; `MessageError` for anything else."""
    ms, sep, frame_id = cursor.partition("_")
    if not sep or not ms.isascii() or not ms.isdigit() or not frame_id or int(ms) > _MAX_MS:
        raise MessageError("cursor is not one this API returned as 'next'")
    return int(ms), frame_id


def _filters(
    stream_id: str | None, start_ms: int | None, end_ms: int | None, label: str | None,
    min_score: float | None,
) -> list[dict[str, Any]]:  # fmt: skip
    f: list[dict[str, Any]] = []
    if stream_id is not None:
        f.append({"term": {"stream_id": stream_id}})
    if label is not None:
        f.append({"term": {"label": label}})
    if start_ms is not None or end_ms is not None:
        rng: dict[str, int] = {}
        if start_ms is not None:
            rng["gte"] = start_ms
        if end_ms is not None:
            rng["lt"] = end_ms
        f.append({"range": {"captured_at": rng}})
    if min_score is not None:
        f.append({"range": {"score": {"gte": min_score}}})
    return f


def _prediction(source: dict[str, Any]) -> Prediction:
    for field in (EMBEDDING, "keyframe_id", "thumbnail"):  # stored with it, not part of it
        source.pop(field, None)
    try:
        return Prediction.model_validate(source)
    except ValidationError as e:
        err = e.errors()[0]
        loc = ".".join(str(x) for x in err["loc"])
        raise MessageError(f"invalid Prediction in Elasticsearch: {loc}: {err['msg']}") from None


@es_errors("read")
async def history(
    es: AsyncElasticsearch,
    s: ElasticsearchSettings,
    *,
    stream_id: str | None = None,
    start_ms: int | None = None,
    end_ms: int | None = None,
    label: str | None = None,
    min_score: float | None = None,
    size: int = 50,
    cursor: str | None = None,
    order: Order = "desc",
) -> PredictionPage:
    """Predictions of every model matching every given filter, sorted by (captured_at,
    frame_id) in `order`, from after `cursor` (the `next` of the previous page; None: first).

    Times are ms since epoch, `start_ms` inclusive, `end_ms` exclusive; `min_score` is the
    prediction's own score (0..1). `size` per page, 1..10000. `MessageError` for a cursor
    `encode_cursor` did not make.
    """
    if not 1 <= size <= 10_000:
        raise ValueError(f"size must be in 1..10000, got {size}")
    search_after = None if cursor is None else decode_cursor(cursor)
    resp = await es.search(
        index=s.predictions_index,  # the alias: every model's indices, every day
        ignore_unavailable=True,  # an index retention deleted is no error
        allow_no_indices=True,
        size=size,
        query={"bool": {"filter": _filters(stream_id, start_ms, end_ms, label, min_score)}},
        sort=[{"captured_at": order}, {"frame_id": order}],
        search_after=None if search_after is None else list(search_after),
        source_excludes=[EMBEDDING],
        track_total_hits=False,
    )
    hits = resp["hits"]["hits"]
    items = [_prediction(h["_source"]) for h in hits]
    last = items[-1] if len(items) == size else None  # a full page: there may be more
    return PredictionPage(
        items=items, next=None if last is None else encode_cursor((last.captured_at, last.frame_id))
    )


@es_errors("read")
async def events(
    es: AsyncElasticsearch,
    s: ElasticsearchSettings,
    *,
    stream_id: str | None = None,
    type_: str | None = None,
    label: str | None = None,
    severity: str | None = None,
    start_ms: int | None = None,
    end_ms: int | None = None,
    size: int = 50,
    cursor: str | None = None,
) -> EventPage:
    """Events of the events app matching every given filter, newest first by (start, event_id),
    from after `cursor`. Times bound the event's `start` (captured_at, ms; `start_ms`
    inclusive, `end_ms` exclusive). `MessageError` for a cursor `encode_cursor` did not make."""
    if not 1 <= size <= 10_000:
        raise ValueError(f"size must be in 1..10000, got {size}")
    search_after = None if cursor is None else decode_cursor(cursor)
    f: list[dict[str, Any]] = [
        {"term": {field: value}}
        for field, value in (
            ("stream_id", stream_id), ("type", type_), ("label", label), ("severity", severity)
        )
        if value is not None
    ]  # fmt: skip
    if start_ms is not None or end_ms is not None:
        rng = {k: v for k, v in (("gte", start_ms), ("lt", end_ms)) if v is not None}
        f.append({"range": {"start": rng}})
    resp = await es.search(
        index=s.events_index,  # the alias: every day
        ignore_unavailable=True,
        allow_no_indices=True,
        size=size,
        query={"bool": {"filter": f}},
        sort=[{"start": "desc"}, {"event_id": "desc"}],
        search_after=None if search_after is None else list(search_after),
        track_total_hits=False,
    )
    items: list[Event] = []
    for h in resp["hits"]["hits"]:
        try:
            items.append(Event.model_validate(h["_source"]))
        except ValidationError as e:
            err = e.errors()[0]
            loc = ".".join(str(x) for x in err["loc"])
            raise MessageError(f"invalid Event in Elasticsearch: {loc}: {err['msg']}") from None
    last = items[-1] if len(items) == size else None
    return EventPage(
        items=items,
        next=None if last is None else encode_cursor((last.start or 0, last.event_id)),
    )


@es_errors("read")
async def knn(
    es: AsyncElasticsearch,
    s: ElasticsearchSettings,
    space: EmbeddingSpace,
    vector: np.ndarray,
    *,
    k: int = 10,
    num_candidates: int | None = None,
    stream_id: str | None = None,
    start_ms: int | None = None,
    end_ms: int | None = None,
    label: str | None = None,
    min_score: float | None = None,
) -> list[SearchHit]:
    """The `k` keyframes of `space` whose embeddings are nearest to `vector` (float32 [D], e.g. a
    CLIP text embedding of the same model), best first, among those matching the filters (same
    as `history`), each with the span of frames it stands for.

    `num_candidates` per shard (default max(100, 4·k), at most 10000) trades recall for speed.
    """
    if vector.shape != (space.dims,):
        raise ValueError(f"query vector must be [{space.dims}], got shape {vector.shape}")
    if not 1 <= k <= _MAX_CANDIDATES:
        raise ValueError(f"k must be in 1..{_MAX_CANDIDATES}, got {k}")
    candidates = min(_MAX_CANDIDATES, num_candidates or max(100, 4 * k))
    if candidates < k:
        raise ValueError(f"num_candidates ({candidates}) must be >= k ({k})")
    resp = await es.search(
        index=space_pattern(s, space),
        ignore_unavailable=True,  # an index retention deleted is no error
        allow_no_indices=True,
        knn={
            "field": EMBEDDING,
            "query_vector": quantize(vector).tolist(),
            "k": k,
            "num_candidates": candidates,
            "filter": _filters(stream_id, start_ms, end_ms, label, min_score),
        },
        size=k,
        source_excludes=[EMBEDDING],
    )
    hits = [
        (h["_source"].get("thumbnail"), _prediction(h["_source"]),
         2.0 * float(h["_score"]) - 1.0)  # ES scores (1 + cos) / 2
        for h in resp["hits"]["hits"]
    ]  # fmt: skip
    spans = await _spans(es, s, space, [p.frame_id for _, p, _ in hits])
    out = []
    for thumb, p, sim in hits:
        frames, first, last = spans.get(p.frame_id, (1, p.captured_at, p.captured_at))
        out.append(SearchHit(similarity=sim, prediction=p, frames=frames, first_at=first,
                             last_at=last, thumbnail=frame_thumbnail_path(p.frame_id) if thumb
                             else None))  # fmt: skip
    return out


async def _spans(
    es: AsyncElasticsearch, s: ElasticsearchSettings, space: EmbeddingSpace, ids: list[str]
) -> dict[str, tuple[int, int, int]]:
    """keyframe_id -> (frames it stands for, first and last captured_at), one aggregation."""
    if not ids:
        return {}
    resp = await es.search(
        index=space_pattern(s, space),
        ignore_unavailable=True,  # an index retention deleted is no error
        allow_no_indices=True,
        size=0,
        query={"terms": {"keyframe_id": ids}},
        aggs={"by": {
            "terms": {"field": "keyframe_id", "size": len(ids)},
            "aggs": {"first": {"min": {"field": "captured_at"}},
                     "last": {"max": {"field": "captured_at"}}},
        }},
    )  # fmt: skip
    return {
        b["key"]: (int(b["doc_count"]), int(b["first"]["value"]), int(b["last"]["value"]))
        for b in resp["aggregations"]["by"]["buckets"]
    }


@es_errors("read")
async def frame_embedding(
    es: AsyncElasticsearch, s: ElasticsearchSettings, space: EmbeddingSpace, frame_id: str
) -> tuple[Prediction, np.ndarray] | None:
    """A stored frame of `space` and the embedding that stands for it (its own on a keyframe,
    else its keyframe's); None when the frame is not in `space`'s indices (unknown, deleted by
    retention, or made by another model)."""
    pattern = space_pattern(s, space)
    found = await es.search(
        index=pattern, ignore_unavailable=True, allow_no_indices=True, size=1,
        query={"ids": {"values": [frame_id]}}, source_excludes=[EMBEDDING],
    )  # fmt: skip
    hits = found["hits"]["hits"]
    if not hits:
        return None
    key = hits[0]["_source"].get("keyframe_id") or frame_id
    keyframe = await es.search(
        index=pattern, ignore_unavailable=True, allow_no_indices=True, size=1,
        query={"ids": {"values": [key]}},
        source={"includes": [EMBEDDING], "exclude_vectors": False},
    )  # fmt: skip
    rows = keyframe["hits"]["hits"]
    vector = rows[0]["_source"].get(EMBEDDING) if rows else None
    if vector is None:
        return None
    return _prediction(hits[0]["_source"]), np.asarray(vector, dtype=np.float32)
