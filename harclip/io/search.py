"""Elasticsearch as the history store: index templates (no ILM, no data streams), bulk indexing of
Predictions with their image embedding, history queries and kNN search over the embeddings.

Works against a bare Elasticsearch (the integ-test build: no ILM, data streams, painless or
analysis plugins); never calls `GET /`. Documents use `_id` = frame_id, so a replay overwrites.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import orjson
from elastic_transport import ConnectionError as TransportConnectionError
from elastic_transport import ConnectionTimeout, HttpxAsyncHttpNode
from elasticsearch import ApiError, AsyncElasticsearch, BadRequestError, NotFoundError
from elasticsearch.serializer import NdjsonSerializer, OrjsonSerializer
from pydantic import ValidationError

from harclip.config import ElasticsearchSettings
from harclip.errors import ConfigError, MessageError, SinkRefused, SinkUnavailable
from harclip.io.errors import Fault, mapped
from harclip.messages import Prediction

EMBEDDING = "embedding"  # the dense_vector field of the predictions index
_MAX_CANDIDATES = 10_000  # Elasticsearch's limit for knn.num_candidates
_EPOCH_MS = {"type": "date", "format": "epoch_millis"}

Order = Literal["asc", "desc"]
SearchAfter = tuple[int, str]  # (captured_at ms, frame_id) of the last hit of a page


class _OrjsonNdjson(NdjsonSerializer):
    """NDJSON (bulk bodies) through orjson; numpy arrays are written natively."""

    def json_dumps(self, data: Any) -> bytes:
        return orjson.dumps(data, default=self.default, option=orjson.OPT_SERIALIZE_NUMPY)

    def json_loads(self, data: bytes) -> Any:
        return orjson.loads(data)


def make_es(s: ElasticsearchSettings) -> AsyncElasticsearch:
    """An asyncio client (httpx transport, orjson bodies); connects on the first request."""
    auth = (s.username, s.password or "") if s.username else None
    return AsyncElasticsearch(
        s.url,
        basic_auth=auth,
        request_timeout=s.request_timeout_s,
        node_class=HttpxAsyncHttpNode,
        serializers={
            "application/json": OrjsonSerializer(),
            "application/x-ndjson": _OrjsonNdjson(),
        },
        max_retries=0,  # the worker owns retries (with backoff and backpressure)
    )


def _classify(e: BaseException) -> tuple[Fault, str] | None:
    """No answer, 429 and 5xx are transient; any other refusal is permanent, with its reason."""
    if isinstance(e, TransportConnectionError | ConnectionTimeout):
        return "transient", str(e.message)
    if isinstance(e, ApiError):
        fault: Fault = "transient" if e.status_code == 429 or e.status_code >= 500 else "permanent"
        return fault, f"{e.status_code} {_reason(e)}"
    return None


_es = mapped("Elasticsearch", _classify)


def _reason(e: ApiError) -> str:
    info = e.info if isinstance(e.info, dict) else {}
    err = info.get("error")
    if isinstance(err, dict):
        return f"{err.get('type')}: {err.get('reason')}"
    return str(e.message)


# ----------------------------------------------------------------------------- templates


def _settings(s: ElasticsearchSettings) -> dict[str, Any]:
    return {"number_of_shards": s.shards, "number_of_replicas": s.replicas}


def predictions_mappings(embed_dim: int) -> dict[str, Any]:
    """Mappings of the predictions index: the Prediction JSON plus `embedding`.

    `dynamic: false` keeps a field added to Prediction in `_source` without failing the writes
    of a worker newer than the index.
    """
    return {
        "dynamic": False,
        "properties": {
            "schema": {"type": "keyword"},
            "frame_id": {"type": "keyword"},
            "stream_id": {"type": "keyword"},
            "seq": {"type": "long"},
            "captured_at": _EPOCH_MS,
            "inferred_at": _EPOCH_MS,
            "label": {"type": "keyword"},
            "score": {"type": "float"},
            "top_k": {"properties": {"label": {"type": "keyword"}, "score": {"type": "float"}}},
            "model": {
                "properties": {
                    "name": {"type": "keyword"},
                    "version": {"type": "keyword"},
                    "head_version": {"type": "long"},
                    "engine": {"type": "keyword"},
                }
            },
            "latency_ms": {
                "properties": {k: {"type": "float"} for k in ("queue", "infer", "total")}
            },
            # Embeddings are L2-normalised; cosine also tolerates the small drift of fp16 engines.
            EMBEDDING: {
                "type": "dense_vector",
                "dims": embed_dim,
                "index": True,
                "similarity": "cosine",
            },
        },
    }


def events_mappings() -> dict[str, Any]:
    """Mappings of the events index: ids, labels and times typed; strings added by `stream/`
    later become keywords."""
    return {
        "dynamic": True,
        "dynamic_templates": [
            {"strings": {"match_mapping_type": "string", "mapping": {"type": "keyword"}}}
        ],
        "properties": {
            "schema": {"type": "keyword"},
            "event_id": {"type": "keyword"},
            "stream_id": {"type": "keyword"},
            "kind": {"type": "keyword"},
            "label": {"type": "keyword"},
            "score": {"type": "float"},
            "start": _EPOCH_MS,
            "end": _EPOCH_MS,
            "created_at": _EPOCH_MS,
        },
    }


def _template(index: str, s: ElasticsearchSettings, mappings: dict[str, Any]) -> dict[str, Any]:
    # A longer (more specific) name gets a higher priority, so e.g. a test's `name-<suffix>*`
    # template wins over the general `name*` one instead of conflicting with it.
    return {
        "name": index,
        "index_patterns": [f"{index}*"],
        "priority": 100 + len(index),
        "template": {"settings": _settings(s), "mappings": mappings},
        "meta": {"managed_by": "harclip"},
    }


@_es("write")
async def ensure_templates(
    es: AsyncElasticsearch, s: ElasticsearchSettings, embed_dim: int
) -> None:
    """Put the index templates of the predictions and events indices and create those indices
    if missing. Idempotent. Raises `ConfigError` if the predictions index exists with an
    embedding of another size than `embed_dim`."""
    if embed_dim < 1:
        raise ConfigError(f"embed_dim must be >= 1, got {embed_dim}")
    existing = await embedding_dims(es, s)
    if existing is not None and existing != embed_dim:
        raise ConfigError(
            f"Elasticsearch index {s.predictions_index!r} holds embeddings of {existing} dims but "
            f"the model makes {embed_dim}: use another HARCLIP_ELASTICSEARCH__PREDICTIONS_INDEX "
            "or delete the index"
        )
    for index, mappings in (
        (s.predictions_index, predictions_mappings(embed_dim)),
        (s.events_index, events_mappings()),
    ):
        await es.indices.put_index_template(**_template(index, s, mappings))
        if not await es.indices.exists(index=index):
            await _create_index(es, index)


async def _create_index(es: AsyncElasticsearch, index: str) -> None:
    """Create `index` from its template; another process creating it first is fine."""
    try:
        await es.indices.create(index=index)
    except BadRequestError as e:
        if _reason(e).split(":")[0] != "resource_already_exists_exception":
            raise


async def embedding_dims(es: AsyncElasticsearch, s: ElasticsearchSettings) -> int | None:
    """The `dims` of the predictions index's embedding, or None if the index does not exist."""
    try:
        resp = await es.indices.get_mapping(index=s.predictions_index)
    except NotFoundError:
        return None
    for body in resp.body.values():
        field = body.get("mappings", {}).get("properties", {}).get(EMBEDDING)
        if field is not None:
            return int(field["dims"])
    return None


# ----------------------------------------------------------------------------- writes


@_es("write")
async def index_predictions(
    es: AsyncElasticsearch,
    s: ElasticsearchSettings,
    items: Sequence[tuple[Prediction, np.ndarray]],
) -> None:
    """Bulk-index predictions with their embeddings (float32 [D]); `_id` = frame_id, no refresh.

    If documents failed: `SinkUnavailable` when Elasticsearch was overloaded (retry the bulk),
    `SinkRefused` with frame_id -> reason when it rejected them for good.
    """
    if not items:
        return
    ops: list[dict[str, Any]] = []
    for pred, emb in items:
        if emb.ndim != 1:
            raise ValueError(f"embedding of {pred.frame_id} must be 1-D, got shape {emb.shape}")
        doc = pred.to_dict()
        doc[EMBEDDING] = np.ascontiguousarray(emb, dtype=np.float32)
        ops.append({"index": {"_index": s.predictions_index, "_id": pred.frame_id}})
        ops.append(doc)
    resp = await es.bulk(
        operations=ops, filter_path="errors,items.*.error,items.*._id,items.*.status"
    )
    if resp.get("errors"):
        _raise_item_errors(resp.body, len(items))


def _raise_item_errors(body: dict[str, Any], total: int) -> None:
    """`SinkUnavailable` if any failed document may succeed later (429, 5xx: the whole bulk is
    retried, `_id` makes that harmless), else `SinkRefused` naming every refused frame."""
    failed = [item for row in body.get("items", []) for item in row.values() if "error" in item]
    first = failed[0]
    summary = (
        f"Elasticsearch rejected {len(failed)} of {total} documents; first {first.get('_id')}: "
        f"{_item_reason(first)}"
    )
    if any(item.get("status") == 429 or item.get("status", 500) >= 500 for item in failed):
        raise SinkUnavailable(summary)
    raise SinkRefused(summary, {str(item.get("_id")): _item_reason(item) for item in failed})


def _item_reason(item: dict[str, Any]) -> str:
    err = item.get("error") or {}
    return f"{err.get('type')}: {err.get('reason')}"


# ----------------------------------------------------------------------------- reads


@dataclass(frozen=True, slots=True)
class Page:
    """One page of history; pass `next_after` back as `search_after` for the next page (None:
    this was the last)."""

    items: list[Prediction]
    next_after: SearchAfter | None


@dataclass(frozen=True, slots=True)
class Match:
    """A kNN hit: the prediction and its cosine similarity to the query vector (-1..1)."""

    prediction: Prediction
    similarity: float


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
    source.pop(EMBEDDING, None)
    try:
        return Prediction.model_validate(source)
    except ValidationError as e:
        err = e.errors()[0]
        loc = ".".join(str(x) for x in err["loc"])
        raise MessageError(f"invalid Prediction in Elasticsearch: {loc}: {err['msg']}") from None


@_es("read")
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
    search_after: SearchAfter | None = None,
    order: Order = "desc",
) -> Page:
    """Predictions matching every given filter, sorted by (captured_at, frame_id) in `order`.

    Times are ms since epoch, `start_ms` inclusive, `end_ms` exclusive; `min_score` is the
    prediction's own score (0..1). `size` per page, 1..10000.
    """
    if not 1 <= size <= 10_000:
        raise ValueError(f"size must be in 1..10000, got {size}")
    resp = await es.search(
        index=s.predictions_index,
        size=size,
        query={"bool": {"filter": _filters(stream_id, start_ms, end_ms, label, min_score)}},
        sort=[{"captured_at": order}, {"frame_id": order}],
        search_after=None if search_after is None else list(search_after),
        source_excludes=[EMBEDDING],
        track_total_hits=False,
    )
    hits = resp["hits"]["hits"]
    items = [_prediction(h["_source"]) for h in hits]
    last = items[-1] if items else None
    next_after = (last.captured_at, last.frame_id) if last and len(items) == size else None
    return Page(items=items, next_after=next_after)


@_es("read")
async def knn(
    es: AsyncElasticsearch,
    s: ElasticsearchSettings,
    vector: np.ndarray,
    *,
    k: int = 10,
    num_candidates: int | None = None,
    stream_id: str | None = None,
    start_ms: int | None = None,
    end_ms: int | None = None,
    label: str | None = None,
    min_score: float | None = None,
) -> list[Match]:
    """The `k` predictions whose embeddings are nearest to `vector` (float32 [D], e.g. a CLIP
    text embedding), best first, among those matching the filters (same as `history`).

    `num_candidates` per shard (default max(100, 4·k), at most 10000) trades recall for speed.
    """
    if vector.ndim != 1:
        raise ValueError(f"query vector must be 1-D, got shape {vector.shape}")
    if not 1 <= k <= _MAX_CANDIDATES:
        raise ValueError(f"k must be in 1..{_MAX_CANDIDATES}, got {k}")
    candidates = min(_MAX_CANDIDATES, num_candidates or max(100, 4 * k))
    if candidates < k:
        raise ValueError(f"num_candidates ({candidates}) must be >= k ({k})")
    resp = await es.search(
        index=s.predictions_index,
        knn={
            "field": EMBEDDING,
            "query_vector": vector.astype(np.float32).tolist(),
            "k": k,
            "num_candidates": candidates,
            "filter": _filters(stream_id, start_ms, end_ms, label, min_score),
        },
        size=k,
        source_excludes=[EMBEDDING],
    )
    # Elasticsearch scores cosine as (1 + cos) / 2.
    return [
        Match(prediction=_prediction(h["_source"]), similarity=2.0 * float(h["_score"]) - 1.0)
        for h in resp["hits"]["hits"]
    ]
