"""Every change of the adapter in force is also an Event: `adapter.promoted` on harclip.events
(docs/feedback.md "The gate", docs/events.md "Event types"), sent after the control record, so
the events app's outputs (Elasticsearch, Redis), `/events` and `/ws/events` show it like any
event. Its stream is `DEPLOYMENT_STREAM` ("*": the whole deployment) and its id a hash of
(type, version, the control record's `published_at`): sending it again changes nothing.

A failure to send it is logged and counted (`{prefix}:adapter:event_failures` in Redis, shown by
`harclip adapt status`); the promotion, already in force, stays."""

from __future__ import annotations

import logging
from typing import Any

from harclip.adapt.cache import Adapter
from harclip.adapt.holder import Published
from harclip.config import Settings
from harclip.messages import (
    DEPLOYMENT_STREAM,
    AdapterChange,
    Event,
    ModelRef,
    PromotionReason,
    promotion_event_id,
)

log = logging.getLogger(__name__)


def promotion_event(
    published: Published,
    previous: Adapter | None,
    reason: PromotionReason,
    *,
    score: float | None,
    champion_score: float | None,
    model: ModelRef | None,
) -> Event:
    """The `adapter.promoted` event of a control record: `start` and `emitted_at` are its
    `published_at` (wall clock, ms; there is no capture time), `model` the served model with
    the adapter now in force (None after a rollback to none)."""
    a = published.adapter
    version = None if a is None else a.version
    at = published.published_at
    change = AdapterChange(
        reason=reason,
        version=version,
        previous=None if previous is None else previous.version,
        scopes=() if a is None else tuple(a.scopes),
        score=score,
        champion_score=champion_score,
    )
    ref = None if model is None else model.model_copy(update={"adapter": version})
    return Event(
        event_id=promotion_event_id(version, at),
        type="adapter.promoted",
        stream_id=DEPLOYMENT_STREAM,
        start=at,
        model=ref,
        emitted_at=at,
        adapter=change,
    )


def failures_key(s: Settings) -> str:
    """The Redis counter of promotion events that could not be sent."""
    return f"{s.redis.key_prefix}:adapter:event_failures"


async def send_event(s: Settings, producer: Any, r: Any, event: Event) -> bool:
    """Send `event` on harclip.events (key "*") and wait for the broker (acks=all); False when
    it failed: logged, counted in Redis, never raised (the promotion stays in force)."""
    try:
        await producer.send_and_wait(
            s.kafka.topics.events, event.to_json(), key=event.stream_id.encode()
        )
        return True
    except Exception as e:  # any failure: the promotion is already in force
        log.error("adapter.promoted event %s not sent on %s (the promotion stands): %r",
                  event.event_id, s.kafka.topics.events, e)  # fmt: skip
    try:
        await r.incr(failures_key(s))
    except Exception as e:  # Redis down too: the log line is the record
        log.error("adapter event failure not counted in Redis: %r", e)
    return False
