"""Feedback: `POST /feedback` records an operator's verdict on a frame or an event (its best
frame), with the frame's embedding and image for learning; `GET /feedback` and
`GET /feedback/counts` read verdicts back, each frame's latest verdict winning (all are kept).

Posting needs a `predict` key (with auth off: an admin key, as every write) and is limited per
key (`AuthSettings.feedback_per_min`, 429 with `Retry-After`). The embedding is the frame's
keyframe embedding when the history holds one of this API's model, else recomputed by the API's
engine from the frame's image (an event's snapshot, the stream's live frame while it is still the
judged one, else the keyframe's thumbnail); with neither, 409 `no_embedding` says why."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Literal

import numpy as np
from fastapi import APIRouter, Depends, Query, Request

from api.auth import Principal, TokenBucket, requires
from api.errors import error_responses
from api.gate import GatedRoute
from api.runtime import ClientsDep, MetricsDep, PredictorDep, SettingsDep
from harclip.io.feedback import FeedbackFilter, Judged
from harclip.messages import Event, new_frame_id, now_ms
from harclip.messages.feedback import Feedback
from harclip.wire import ApiError
from harclip.wire.feedback import (
    MAX_FEEDBACK_LIMIT,
    CountGroup,
    FeedbackCounts,
    FeedbackPage,
    FeedbackRequest,
)

router = APIRouter(tags=["feedback"], route_class=GatedRoute)
log = logging.getLogger(__name__)


class FeedbackLimits:
    """One token bucket per key for POST /feedback (beside the key's request bucket)."""

    def __init__(
        self, per_min: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._rate = per_min / 60.0
        self._burst = burst
        self._clock = clock
        self._buckets: dict[str, TokenBucket] = {}

    def take(self, principal: Principal) -> None:
        """`ApiError` 429 with `Retry-After` when the key gave feedback too fast."""
        name = f"{principal.key_id}/{principal.who}/{id(principal.bucket)}"
        bucket = self._buckets.get(name)
        if bucket is None:
            bucket = self._buckets[name] = TokenBucket(self._rate, self._burst, self._clock)
        wait = bucket.take()
        if wait > 0:
            raise ApiError(
                429, "rate_limited",
                f"feedback rate of {self._rate * 60:g} per minute exceeded for this key",
                {"Retry-After": str(max(1, math.ceil(wait)))},
            )  # fmt: skip


def _limits(request: Request) -> FeedbackLimits:
    state = request.app.state
    if getattr(state, "feedback_limits", None) is None:
        a = request.app.state.runtime.settings.auth
        state.feedback_limits = FeedbackLimits(a.feedback_per_min, a.feedback_burst)
    limits: FeedbackLimits = state.feedback_limits
    return limits


@dataclass(frozen=True, slots=True)
class _Target:
    """What a verdict judges: a stored frame (None when an event's frame is gone), the served
    label, the stream, the event if any, and the image when one is at hand."""

    judged: Judged | None
    predicted: str | None
    stream_id: str
    event: Event | None
    image: bytes | None


async def _target(body: FeedbackRequest, clients: ClientsDep, settings: SettingsDep) -> _Target:
    from harclip.io import feedback as store
    from harclip.io.evidence import find_event

    es = await clients.search_client()
    s = settings.elasticsearch
    if body.event_id is not None:
        event = await find_event(es, s, body.event_id)
        if event is None:
            raise ApiError(404, "not_found", f"no event {body.event_id!r}")
        if event.adapter is not None:  # adapter.promoted: about the deployment, not a frame
            raise ApiError(422, "invalid_request", f"event_id: {body.event_id!r} is an "
                           f"{event.type} event, which judges no frame")  # fmt: skip
        judged = await store.find_peak_frame(es, s, event)
        snapshot = event.evidence.snapshot if event.evidence is not None else None
        image = await _object(clients, snapshot) if snapshot else None
        return _Target(judged, event.label, event.stream_id, event, image)
    assert body.frame_id is not None
    judged = await store.find_frame(es, s, body.frame_id)
    if judged is None:
        raise ApiError(
            404, "not_found", f"frame {body.frame_id!r} is not in the history (unknown, not yet "
            "stored, or removed by retention)",
        )  # fmt: skip
    p = judged.prediction
    image = await _live_frame(clients, p.stream_id, p.frame_id)
    if image is None:
        image = await _thumbnail(clients, settings, p.frame_id)
    return _Target(judged, p.label, p.stream_id, None, image)


async def _object(clients: ClientsDep, key: str) -> bytes | None:
    if not clients.settings.objects.enabled:
        return None
    body = await (await clients.objects()).get(key)
    return None if body is None else body.data


async def _live_frame(clients: ClientsDep, stream_id: str, frame_id: str) -> bytes | None:
    """The stream's live frame in Redis while it is still the judged frame."""
    from harclip.io.store import read_frame, read_latest

    if not clients.settings.redis.enabled:
        return None
    r, s = clients.redis(), clients.settings.redis
    latest = await read_latest(r, s, stream_id)
    if latest is None or latest.frame_id != frame_id:
        return None
    data = await read_frame(r, s, stream_id)
    again = await read_latest(r, s, stream_id)  # the frame may have moved on meanwhile
    return data if again is not None and again.frame_id == frame_id else None


async def _thumbnail(clients: ClientsDep, settings: SettingsDep, frame_id: str) -> bytes | None:
    from harclip.io.evidence import frame_thumbnail

    key = await frame_thumbnail(await clients.search_client(), settings.elasticsearch, frame_id)
    return await _object(clients, key) if isinstance(key, str) else None


async def _embedding(target: _Target, predictor: PredictorDep) -> list[float]:
    """The judged frame's unit embedding in this API's space: stored, else recomputed."""
    from harclip.io.indices import space_pattern

    j = target.judged
    prefix = space_pattern(predictor.settings.elasticsearch, predictor.space).rstrip("*")
    if j is not None and j.embedding is not None and j.index.startswith(prefix):
        vector = j.embedding
    elif target.image is not None:
        (scored,) = await predictor.predict([("frame", target.image)], 1)
        vector = scored.embedding
    else:
        why = (
            f"its keyframe has no embedding of this API's model ({predictor.space.slug})"
            if j is not None
            else "the history no longer holds it"
        )
        raise ApiError(
            409, "no_embedding", f"the judged frame has no embedding to learn from: {why}, and "
            "its image is not available (no snapshot, live frame or thumbnail)",
        )  # fmt: skip
    v = np.asarray(vector, dtype=np.float32)
    norm = float(np.linalg.norm(v))
    if norm == 0.0:
        raise ApiError(409, "no_embedding", "the judged frame's embedding is all zeros")
    return [float(x) for x in v / norm]


def _label(body: FeedbackRequest, predicted: str | None) -> str | None:
    if body.verdict == "correct":
        if predicted is None:
            raise ApiError(422, "invalid_request", "label: nothing was served for this target "
                           "to be correct; send verdict 'wrong' with the right label")  # fmt: skip
        if body.label is not None and body.label != predicted:
            raise ApiError(
                422, "invalid_request", f"label: a 'correct' verdict takes the served label "
                f"{predicted!r}; send verdict 'wrong' to give {body.label!r}",
            )  # fmt: skip
        return predicted
    label = body.label.strip() if body.label is not None else None
    if label == "":
        raise ApiError(422, "invalid_request", "label: must not be blank")
    if label is not None and label == predicted:
        raise ApiError(422, "invalid_request", f"label: {label!r} is what was served; "
                       "send verdict 'correct'")  # fmt: skip
    return label


@router.post(
    "/feedback",
    response_model=Feedback,
    response_model_exclude={"embedding"},
    status_code=201,
    summary="A verdict on a frame or an event: right, or wrong and the right label",
    responses=error_responses(401, 403, 404, 409, 422, 429, 503),
)
async def post_feedback(
    body: FeedbackRequest, request: Request, predictor: PredictorDep, clients: ClientsDep,
    settings: SettingsDep, metrics: MetricsDep,
    principal: Annotated[Principal, Depends(requires("predict", write=True))],
) -> Feedback:  # fmt: skip
    """Stores the verdict (201, the document without its embedding). For an event the judged
    frame is its best one (the snapshot's, at `peak_at`). Verdicts are all kept; reads let the
    latest verdict of a frame win."""
    from harclip.io import feedback as store
    from harclip.io.keys import feedback_key

    _limits(request).take(principal)
    target = await _target(body, clients, settings)
    known = tuple(predictor.heads.head.labels)
    label = _label(body, target.predicted)
    embedding = await _embedding(target, predictor)
    given_at = now_ms()
    feedback_id = new_frame_id(given_at)
    image_key = None
    if target.image is not None and settings.objects.enabled:
        image_key = feedback_key(target.stream_id, given_at, feedback_id)
        await (await clients.objects()).put(image_key, target.image, "image/jpeg")
    p = target.judged.prediction if target.judged is not None else None
    fb = Feedback(
        feedback_id=feedback_id, target="event" if target.event else "frame",
        frame_id=p.frame_id if p is not None else f"event:{body.event_id}",
        event_id=body.event_id, stream_id=target.stream_id, verdict=body.verdict, label=label,
        predicted=target.predicted, new_label=label is not None and label not in known,
        note=body.note, by=principal.who, given_at=given_at,
        captured_at=p.captured_at if p is not None else None,
        model=p.model if p is not None else (target.event.model if target.event else None),
        embedding=embedding, image=image_key,
        embedding_model=f"{predictor.space.model}/{predictor.space.version}",
    )  # fmt: skip
    await store.index_feedback(await clients.search_client(), settings.elasticsearch, [fb], True)
    metrics.feedback.observe(fb.stream_id, fb.predicted, fb.verdict)
    log.info("feedback %s on %s %s by %s: %s -> %s", fb.feedback_id, fb.target,
             body.event_id or fb.frame_id, fb.by, fb.verdict, fb.label)  # fmt: skip
    return fb


StreamQ = Annotated[str | None, Query(min_length=1, max_length=200, description="a stream id")]
LabelFQ = Annotated[
    str | None,
    Query(min_length=1, max_length=64, description="the right label; `none`: none of these"),
]
VerdictQ = Annotated[Literal["correct", "wrong"] | None, Query(description="the verdict")]
ByQ = Annotated[str | None, Query(min_length=1, max_length=64, description="the giver's name")]
SinceQ = Annotated[int | None, Query(ge=0, description="given at or after, ms since epoch")]
UntilQ = Annotated[int | None, Query(ge=0, description="given before, ms since epoch")]


def _filter(
    stream_id: str | None, label: str | None, verdict: Literal["correct", "wrong"] | None,
    by: str | None, since_ms: int | None, until_ms: int | None, frame_id: str | None = None,
) -> FeedbackFilter:  # fmt: skip
    if since_ms is not None and until_ms is not None and until_ms <= since_ms:
        raise ApiError(422, "invalid_request", "until_ms: must be after since_ms")
    return FeedbackFilter(
        stream_id=stream_id, label=None if label == "none" else label, label_none=label == "none",
        verdict=verdict, by=by, since_ms=since_ms, until_ms=until_ms, frame_id=frame_id,
    )  # fmt: skip


@router.get(
    "/feedback",
    response_model=FeedbackPage,
    summary="Verdicts, newest first (each frame's latest unless all=true)",
    dependencies=[Depends(requires("read"))],
    responses=error_responses(401, 403, 422, 429, 503),
)
async def get_feedback(
    clients: ClientsDep, settings: SettingsDep, stream_id: StreamQ = None, label: LabelFQ = None,
    verdict: VerdictQ = None, by: ByQ = None, since_ms: SinceQ = None, until_ms: UntilQ = None,
    frame_id: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
    all: Annotated[bool, Query(description="every verdict, superseded ones too")] = False,
    limit: Annotated[int, Query(ge=1, le=MAX_FEEDBACK_LIMIT)] = 100,
) -> FeedbackPage:  # fmt: skip
    from harclip.io.feedback import list_feedback

    f = _filter(stream_id, label, verdict, by, since_ms, until_ms, frame_id)
    es = await clients.search_client()
    items, more = await list_feedback(es, settings.elasticsearch, f, limit, every=all)
    return FeedbackPage(items=items, truncated=more)


@router.get(
    "/feedback/counts",
    response_model=FeedbackCounts,
    summary="Counts of the frames' latest verdicts per stream and label",
    dependencies=[Depends(requires("read"))],
    responses=error_responses(401, 403, 422, 429, 503),
)
async def get_feedback_counts(
    clients: ClientsDep, settings: SettingsDep, stream_id: StreamQ = None, label: LabelFQ = None,
    verdict: VerdictQ = None, by: ByQ = None, since_ms: SinceQ = None, until_ms: UntilQ = None,
    group: Annotated[CountGroup, Query(description="rows per right label (`label`) or per "
                                       "served label (`predicted`)")] = "label",
) -> FeedbackCounts:  # fmt: skip
    """`group=predicted`: per served label, `correct / (correct + wrong)` is the online accuracy
    of that label; `group=label`: per right label, how often it was recognised."""
    from harclip.io.feedback import count_feedback

    f = _filter(stream_id, label, verdict, by, since_ms, until_ms)
    es = await clients.search_client()
    return await count_feedback(es, settings.elasticsearch, f, group)
