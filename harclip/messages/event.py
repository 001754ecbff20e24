"""The events contract shared by the events app (`stream/`) and its readers (the API, the UI):
the `harclip.event/1` Event, its deterministic id, and the per-stream documents the app keeps
(current action, statistics). Their Redis reads and writes are in `harclip.io.events`.

Alert rules (their YAML, validation and the `harclip.control` record) live in `harclip.rules`.
"""

from __future__ import annotations

import hashlib
from typing import ClassVar, Literal

from pydantic import Field

from harclip.messages.base import Message, Part
from harclip.messages.prediction import ModelRef

EVENT_SCHEMA = "harclip.event/1"

EventType = Literal[
    "segment.start", "segment.end", "alert", "stream.down", "stream.up", "watch.start", "watch.end",
    "adapter.promoted",
]  # fmt: skip
EVENT_TYPES: tuple[EventType, ...] = (
    "segment.start", "segment.end", "alert", "stream.down", "stream.up", "watch.start", "watch.end",
    "adapter.promoted",
)  # fmt: skip
DEPLOYMENT_STREAM = "*"  # the stream_id of events about the whole deployment (adapter.promoted)
Severity = Literal["info", "warning", "critical"]


def event_id(stream_id: str, type_: EventType, seq: int, rule: str | None = None) -> str:
    """The id of an event: 32 hex digits, a hash of (stream, type, starting seq, rule).

    The same event computed twice (a replay, a restarted app) gets the same id, so Elasticsearch
    (`_id`) and the Redis event stream keep one copy. The starting seq is the segment's first seq
    for `segment.start`/`segment.end`, the seq of the prediction that fired an alert (with the
    rule's name), the last seq before a `stream.down`, the first seq after a `stream.up`.
    """
    raw = f"{stream_id}\x1f{type_}\x1f{seq}\x1f{rule or ''}".encode()
    return hashlib.blake2b(raw, digest_size=16).hexdigest()


def promotion_event_id(version: int | None, published_at: int) -> str:
    """The id of an `adapter.promoted` event: a hash of (type, adapter version or none, the
    control record's `published_at`), so republishing the same promotion gets the same id."""
    raw = f"adapter.promoted\x1f{'none' if version is None else version}\x1f{published_at}"
    return hashlib.blake2b(raw.encode(), digest_size=16).hexdigest()


EvidenceMissing = Literal["frames_expired", "no_frames", "disabled", "failed"]


class Evidence(Part):
    """What an event's evidence is (DESIGN.md "Evidence"): object-store keys of its snapshot,
    thumbnail and clip (`harclip.io.keys.evidence_keys`), the frames the clip holds and their
    first/last capture time (ms since epoch) — or, when there is none, why (`missing`).

    A key is set only once its object is written (write the object, then the reference). An
    open segment (`segment.start`) gets a snapshot at once; its clip comes with `segment.end`.
    """

    snapshot: str | None = None
    thumbnail: str | None = None
    clip: str | None = None
    frames: int = 0
    first_captured_at: int | None = None
    last_captured_at: int | None = None
    missing: EvidenceMissing | None = Field(
        None, description="why there is no snapshot or clip: frames_expired (Kafka no longer "
        "holds them), no_frames (the camera sent none in the window), disabled, failed"
    )  # fmt: skip


PromotionReason = Literal["gate", "manual", "rollback"]


class AdapterChange(Part):
    """What an `adapter.promoted` event says (docs/feedback.md "The gate"): why the adapter in
    force changed, its version (None: no adapter any more, a rollback to none) and the one it
    replaced, its scopes, and the held-out accuracies the gate compared (None when not gated)."""

    reason: PromotionReason
    version: int | None = None
    previous: int | None = None
    scopes: tuple[str, ...] = ()
    score: float | None = Field(None, description="the adapter's held-out (k-fold) accuracy")
    champion_score: float | None = Field(
        None, description="the champion's accuracy on the same items (gate only)"
    )


class Event(Message):
    """What the events app says about a stream (see docs/events.md for the exact semantics).

    Times are `captured_at` of predictions (ms since epoch, UTC); `emitted_at` is the app's wall
    clock when it emitted the event and is not part of the event's identity.
    """

    SCHEMA: ClassVar[str] = EVENT_SCHEMA
    schema_: str = Field(EVENT_SCHEMA, alias="schema")
    event_id: str
    type: EventType
    stream_id: str
    label: str | None = None
    start: int | None = Field(None, description="captured_at where it starts, ms")
    end: int | None = Field(None, description="captured_at where it ends (exclusive), ms")
    first_seq: int | None = None
    last_seq: int | None = None
    frames: int = 0
    score_mean: float | None = Field(None, description="mean smoothed score of `label`")
    score_max: float | None = Field(None, description="max smoothed score of `label`")
    rule: str | None = None
    watch: str | None = Field(
        None, description="the watch (harclip.watches) of a watch.start / watch.end or its alert"
    )
    severity: Severity | None = None
    threshold: float | None = Field(
        None, description="a watch event's threshold in force when it fired (per camera)"
    )
    calibration: Literal["calibrated", "calibrating", "pinned"] | None = Field(
        None, description="where a watch event's threshold came from: the camera's calibrated "
        "one, the watch's absolute one while the camera is calibrating, or the pinned one"
    )  # fmt: skip
    model: ModelRef | None = None
    emitted_at: int = Field(0, description="wall clock of the app when emitted, ms")
    peak_at: int | None = Field(
        None, description="captured_at of the prediction with `score_max` (the snapshot), ms"
    )
    evidence: Evidence | None = Field(
        None, description="set on the copy of the event the evidence step republishes (same "
        "event_id) once its objects are written; None on the event as first emitted"
    )  # fmt: skip

    adapter: AdapterChange | None = Field(
        None, description="an adapter.promoted event's change of the feedback cache adapter"
    )

    OMIT_EMPTY: ClassVar[frozenset[str]] = frozenset(
        {"watch", "threshold", "calibration", "adapter"}
    )


class StreamAction(Part):
    """A stream's current action (`harclip:stream:{id}:action`): the label of its open segment,
    or `state` "down" (with label None) once the stream went quiet."""

    stream_id: str
    state: Literal["active", "down"]
    label: str | None = None
    since: int | None = Field(None, description="captured_at where the segment started, ms")
    seq: int | None = Field(None, description="the newest seq the setting event covers")
    event_id: str = Field(description="the event that set it")
    score: float | None = Field(None, description="the segment's mean smoothed score so far")
    model: ModelRef | None = None
    updated_at: int = Field(description="emitted_at of that event (wall clock of the app, ms)")


class WindowStats(Part):
    """Statistics of one time window [start, end) of capture time (ms since epoch)."""

    start: int
    end: int
    seconds: dict[str, float] = Field(default_factory=dict, description="time in each action")
    segments: dict[str, int] = Field(default_factory=dict, description="segments started")


class StreamStats(Part):
    """Per-stream statistics (`harclip:stream:{id}:stats`): the 1-minute tumbling windows of the
    last hour (newest first) and the rolling hour ending with the newest minute."""

    stream_id: str
    minutes: list[WindowStats]
    hour: WindowStats
    updated_at: int = Field(0, description="wall clock of the app, ms")


def action_of(e: Event) -> StreamAction | None:
    """The action an event sets: segment.start (its label), stream.up (active, no label yet),
    stream.down (down); None for the others."""
    if e.type == "segment.start":
        return StreamAction(stream_id=e.stream_id, state="active", label=e.label, since=e.start,
                            seq=e.last_seq, event_id=e.event_id, score=e.score_mean,
                            model=e.model, updated_at=e.emitted_at)  # fmt: skip
    if e.type in ("stream.up", "stream.down"):
        state: Literal["active", "down"] = "active" if e.type == "stream.up" else "down"
        return StreamAction(stream_id=e.stream_id, state=state, since=e.start,
                            seq=e.last_seq, event_id=e.event_id, model=e.model,
                            updated_at=e.emitted_at)  # fmt: skip
    return None
