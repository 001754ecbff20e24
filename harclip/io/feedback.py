"""The feedback index in Elasticsearch (`ElasticsearchSettings.feedback_index`, one index, kept):
its mapping, writes (`_id` = feedback_id: every verdict is kept, conflicting ones included) and
the reads in which the latest verdict of a frame wins (`list_feedback`, `count_feedback`), and
the lookups of what a verdict judges (a stored frame; an event's best frame)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from elasticsearch import BadRequestError
from pydantic import ValidationError

from harclip.config import ElasticsearchSettings
from harclip.errors import MessageError
from harclip.io.es import es_errors, reason
from harclip.io.indices import EMBEDDING, MARKER
from harclip.messages import Event, Prediction
from harclip.messages.feedback import Feedback, Verdict
from harclip.wire.feedback import CountGroup, FeedbackCount, FeedbackCounts

if TYPE_CHECKING:
    from elasticsearch import AsyncElasticsearch

SCAN_CAP = 10_000  # frames a read looks at (Elasticsearch's result window)
_EPOCH_MS = {"type": "date", "format": "epoch_millis"}


def feedback_mappings() -> dict[str, Any]:
    """The `harclip.feedback/1` document. The embedding is kept in `_source` only (a float
    array, not indexed: verdicts of several models may share the index, and only the adapter
    reads them, by stream and time); the note is text."""
    keyword = {"type": "keyword"}
    return {
        "dynamic": False,
        "_meta": {"managed_by": MARKER, "family": "feedback"},
        "properties": {
            "schema": keyword, "feedback_id": keyword, "target": keyword, "frame_id": keyword,
            "event_id": keyword, "stream_id": keyword, "verdict": keyword, "label": keyword,
            "predicted": keyword, "new_label": {"type": "boolean"}, "note": {"type": "text"},
            "by": keyword, "given_at": _EPOCH_MS, "captured_at": _EPOCH_MS,
            "model": {"properties": {"name": keyword, "version": keyword,
                                     "head_version": {"type": "long"}}},
            EMBEDDING: {"type": "float", "index": False, "doc_values": False},
            "image": {"type": "keyword", "index": False},
        },
    }  # fmt: skip


@es_errors("write")
async def ensure_feedback_index(es: AsyncElasticsearch, s: ElasticsearchSettings) -> None:
    """Create the feedback index with its mapping unless it exists (idempotent; another process
    creating it first is fine)."""
    if await es.indices.exists(index=s.feedback_index):
        return
    try:
        await es.indices.create(
            index=s.feedback_index, mappings=feedback_mappings(),
            settings={"number_of_shards": s.shards, "number_of_replicas": s.replicas},
        )  # fmt: skip
    except BadRequestError as e:
        if reason(e).split(":")[0] != "resource_already_exists_exception":
            raise


@es_errors("write")
async def index_feedback(
    es: AsyncElasticsearch, s: ElasticsearchSettings, items: Sequence[Feedback], refresh: bool
) -> None:
    """Store verdicts (`_id` = feedback_id); `refresh`: readable at once (the API's single
    verdicts), else within a second (imports)."""
    if not items:
        return
    ops: list[dict[str, Any]] = []
    for fb in items:
        ops += [{"index": {"_index": s.feedback_index, "_id": fb.feedback_id}}, fb.to_dict()]
    resp = await es.bulk(operations=ops, refresh=refresh, filter_path="errors,items.*.error")
    if resp.get("errors"):
        first = next(i for row in resp["items"] for i in row.values() if "error" in i)
        raise MessageError(f"Elasticsearch refused a feedback document: {first['error']}")


# ----------------------------------------------------------------------------- what is judged


@dataclass(frozen=True, slots=True)
class Judged:
    """A stored prediction and its keyframe's embedding (int8 as stored, None when none)."""

    prediction: Prediction
    embedding: np.ndarray | None
    index: str  # the daily index holding it (names the embedding space)


def _prediction(source: dict[str, Any]) -> Prediction:
    for field in (EMBEDDING, "keyframe_id", "thumbnail"):
        source.pop(field, None)
    try:
        return Prediction.model_validate(source)
    except ValidationError as e:
        loc = ".".join(str(x) for x in e.errors()[0]["loc"])
        raise MessageError(f"invalid Prediction in Elasticsearch: {loc}") from None


@es_errors("read")
async def find_frame(
    es: AsyncElasticsearch, s: ElasticsearchSettings, frame_id: str
) -> Judged | None:
    """A frame of the history (any model) with its keyframe's embedding; None when unknown."""
    return await _judged(es, s, {"ids": {"values": [frame_id]}})


@es_errors("read")
async def find_peak_frame(
    es: AsyncElasticsearch, s: ElasticsearchSettings, event: Event
) -> Judged | None:
    """The best frame of an event: its stream's prediction at `peak_at` (the snapshot's frame),
    else at its `start`; None when the history no longer holds it."""
    at = event.peak_at if event.peak_at is not None else event.start
    if at is None:
        return None
    query = {"bool": {"filter": [{"term": {"stream_id": event.stream_id}},
                                 {"term": {"captured_at": at}}]}}  # fmt: skip
    return await _judged(es, s, query)


async def _judged(
    es: AsyncElasticsearch, s: ElasticsearchSettings, query: dict[str, Any]
) -> Judged | None:
    found = await es.search(
        index=s.predictions_index, ignore_unavailable=True, allow_no_indices=True, size=1,
        query=query, source_excludes=[EMBEDDING],
    )  # fmt: skip
    hits = found["hits"]["hits"]
    if not hits:
        return None
    hit = hits[0]
    keyframe_id = hit["_source"].get("keyframe_id") or hit["_id"]
    keyframe = await es.search(
        index=hit["_index"], size=1, query={"ids": {"values": [keyframe_id]}},
        source={"includes": [EMBEDDING], "exclude_vectors": False},
    )  # fmt: skip
    rows = keyframe["hits"]["hits"]
    vector = rows[0]["_source"].get(EMBEDDING) if rows else None
    emb = None if vector is None else np.asarray(vector, dtype=np.float32)
    return Judged(_prediction(dict(hit["_source"])), emb, str(hit["_index"]))


# ----------------------------------------------------------------------------- reads


@dataclass(frozen=True, slots=True)
class FeedbackFilter:
    """What a read selects: stream, right label (`none`: the string "none of these" is
    `label_none=True`), verdict, giver, `given_at` window (ms; since inclusive, until exclusive)."""

    stream_id: str | None = None
    label: str | None = None
    label_none: bool = False
    verdict: Verdict | None = None
    by: str | None = None
    since_ms: int | None = None
    until_ms: int | None = None
    frame_id: str | None = None

    def query(self) -> dict[str, Any]:
        """The part Elasticsearch filters before the latest verdict per frame is taken."""
        terms = (("stream_id", self.stream_id), ("by", self.by), ("frame_id", self.frame_id))
        f: list[dict[str, Any]] = [{"term": {k: v}} for k, v in terms if v is not None]
        if self.since_ms is not None or self.until_ms is not None:
            rng = {
                k: v for k, v in (("gte", self.since_ms), ("lt", self.until_ms)) if v is not None
            }
            f.append({"range": {"given_at": rng}})
        return {"bool": {"filter": f}}

    def keeps(self, fb: Feedback) -> bool:
        """Whether a frame's latest verdict matches the verdict and label filters."""
        if self.verdict is not None and fb.verdict != self.verdict:
            return False
        if self.label_none:
            return fb.label is None
        return self.label is None or fb.label == self.label


@es_errors("read")
async def list_feedback(
    es: AsyncElasticsearch,
    s: ElasticsearchSettings,
    f: FeedbackFilter,
    limit: int,
    every: bool = False,
) -> tuple[list[Feedback], bool]:
    """Verdicts newest first, without embeddings, and whether more matched than returned. Unless
    `every`, only each frame's latest verdict (the latest wins), then filtered by verdict and
    label; at most `SCAN_CAP` frames are looked at."""
    post = f.verdict is not None or f.label is not None or f.label_none
    size = SCAN_CAP if post and not every else min(limit + 1, SCAN_CAP)
    query = f.query()
    if every and post:
        extra = query["bool"]["filter"]
        if f.verdict is not None:
            extra.append({"term": {"verdict": f.verdict}})
        if f.label_none:
            query["bool"]["must_not"] = [{"exists": {"field": "label"}}]
        elif f.label is not None:
            extra.append({"term": {"label": f.label}})
    scanned = await _scan(es, s, query, size, collapse=not every)
    kept = list(scanned) if every else [fb for fb in scanned if f.keeps(fb)]
    return kept[:limit], len(kept) > limit or len(scanned) >= SCAN_CAP


@es_errors("read")
async def count_feedback(
    es: AsyncElasticsearch, s: ElasticsearchSettings, f: FeedbackFilter,
    group: CountGroup = "label",
) -> FeedbackCounts:  # fmt: skip
    """The frames' latest verdicts per stream and right (`group` "label") or served
    ("predicted") label, at most `SCAN_CAP` frames."""
    scanned = await _scan(es, s, f.query(), SCAN_CAP, collapse=True)
    kept = (fb for fb in scanned if f.keeps(fb))
    return tally(kept, truncated=len(scanned) >= SCAN_CAP, group=group)


def tally(
    items: Iterable[Feedback], truncated: bool = False, group: CountGroup = "label"
) -> FeedbackCounts:
    """Counts per (stream, right or served label) of verdicts (pure: each item is one frame's
    latest). Per served label, `correct / (correct + wrong)` is how often that label was right
    when served (the online accuracy); per right label, how often it was recognised."""
    rows: dict[tuple[str, str | None], dict[str, int]] = {}
    for fb in items:
        name = fb.label if group == "label" else fb.predicted
        row = rows.setdefault((fb.stream_id, name), {"correct": 0, "wrong": 0})
        row[fb.verdict] += 1
    correct = sum(r["correct"] for r in rows.values())
    wrong = sum(r["wrong"] for r in rows.values())
    items_out = [
        FeedbackCount(stream_id=k[0], label=k[1], **v)
        for k, v in sorted(rows.items(), key=lambda kv: (kv[0][0], kv[0][1] or ""))
    ]
    total = correct + wrong
    agreement = correct / total if total else None
    return FeedbackCounts(
        items=items_out, group=group, correct=correct, wrong=wrong, truncated=truncated,
        agreement=agreement,
    )  # fmt: skip


async def _scan(
    es: AsyncElasticsearch,
    s: ElasticsearchSettings,
    query: dict[str, Any],
    size: int,
    collapse: bool,
) -> list[Feedback]:
    resp = await es.search(
        index=s.feedback_index, ignore_unavailable=True, allow_no_indices=True, size=size,
        query=query, sort=[{"given_at": "desc"}, {"feedback_id": "desc"}],
        collapse={"field": "frame_id"} if collapse else None,
        source_excludes=[EMBEDDING], track_total_hits=False,
    )  # fmt: skip
    out: list[Feedback] = []
    for h in resp["hits"]["hits"]:
        try:
            out.append(Feedback.model_validate(h["_source"]))
        except ValidationError as e:
            loc = ".".join(str(x) for x in e.errors()[0]["loc"])
            raise MessageError(f"invalid Feedback in Elasticsearch: {loc}") from None
    return out
