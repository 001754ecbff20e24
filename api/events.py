"""What the events app (`stream/`) made, read back: GET /events (Elasticsearch, filters, pages),
GET /streams/{id}/action and /streams/{id}/stats (Redis), and the alert rules on
`harclip.control`: GET /rules, PUT /rules (admin). Live events: /ws/events (api.ws)."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from api.auth import requires
from api.errors import error_responses
from api.gate import GatedRoute
from api.runtime import ClientsDep, ControlDep, SettingsDep
from api.streams import Cursor, EndMs, LabelQ, PageSize, StartMs, StreamId, StreamIdQ
from harclip.control import RULES_KEY, publish
from harclip.messages import EventType, Severity, StreamAction, StreamStats, now_ms
from harclip.rules import Rules, RulesError, rules_from_data
from harclip.wire import ApiError, EventPage, RulesDoc, RulesRequest

router = APIRouter(tags=["events"], route_class=GatedRoute)
log = logging.getLogger(__name__)


@router.get(
    "/events",
    response_model=EventPage,
    summary="Events and alerts (newest first, paged)",
    dependencies=[Depends(requires("read"))],
    responses=error_responses(401, 403, 422, 429, 503),
)
async def list_events(
    clients: ClientsDep,
    settings: SettingsDep,
    stream_id: StreamIdQ = None,
    type: Annotated[EventType | None, Query(description="only this event type")] = None,
    label: LabelQ = None,
    severity: Annotated[Severity | None, Query(description="only alerts of this severity")] = None,
    start_ms: StartMs = None,
    end_ms: EndMs = None,
    size: PageSize = 50,
    cursor: Cursor = None,
) -> EventPage:
    """Segments, alerts and stream up/down events of the events app, by the capture time where
    each starts (`start_ms` inclusive, `end_ms` exclusive)."""
    from harclip.io import search

    return await search.events(
        await clients.search_client(),
        settings.elasticsearch,
        stream_id=stream_id,
        type_=type,
        label=label,
        severity=severity,
        start_ms=start_ms,
        end_ms=end_ms,
        size=size,
        cursor=cursor,
    )


@router.get(
    "/streams/{stream_id}/action",
    response_model=StreamAction,
    summary="A stream's current smoothed action",
    dependencies=[Depends(requires("read"))],
    responses=error_responses(401, 403, 404, 422, 429, 503),
)
async def stream_action(
    stream_id: StreamId, clients: ClientsDep, settings: SettingsDep
) -> StreamAction:
    """The label of the stream's open segment and since when, or state `down`; 404 when the
    events app has not seen the stream (or does not run)."""
    from harclip.io.events import read_action

    action = await read_action(clients.redis(), settings.redis, stream_id)
    if action is None:
        raise ApiError(404, "not_found", f"no action for stream {stream_id!r} (events app)")
    return action


@router.get(
    "/streams/{stream_id}/stats",
    response_model=StreamStats,
    summary="A stream's time per action: last hour by minute",
    dependencies=[Depends(requires("read"))],
    responses=error_responses(401, 403, 404, 422, 429, 503),
)
async def stream_stats(
    stream_id: StreamId, clients: ClientsDep, settings: SettingsDep
) -> StreamStats:
    from harclip.io.events import read_stats

    stats = await read_stats(clients.redis(), settings.redis, stream_id)
    if stats is None:
        raise ApiError(404, "not_found", f"no statistics for stream {stream_id!r} (events app)")
    return stats


def _doc(rules: tuple[Rules, int] | None) -> RulesDoc:
    if rules is None:
        return RulesDoc(rules=[], updated_at=None, published=False)
    found, updated_at = rules
    return RulesDoc(rules=found.to_yaml_dicts(), updated_at=updated_at, published=True)


@router.get(
    "/rules",
    response_model=RulesDoc,
    summary="The alert rules in force",
    dependencies=[Depends(requires("read"))],
    responses=error_responses(401, 403, 429, 503),
)
async def get_rules(control: ControlDep, settings: SettingsDep) -> RulesDoc:
    """The newest valid rules published on `harclip.control` (`published: false` when none
    was: the events app then uses its rules file)."""
    if not settings.api.follow_control:
        from harclip.rules import read_published_rules

        return _doc(await read_published_rules(settings.kafka))
    return _doc(control.rules)


@router.put(
    "/rules",
    response_model=RulesDoc,
    summary="Replace the alert rules (admin)",
    dependencies=[Depends(requires("admin"))],
    responses=error_responses(401, 403, 422, 429, 503),
)
async def put_rules(
    body: RulesRequest, clients: ClientsDep, control: ControlDep, settings: SettingsDep
) -> RulesDoc:
    """Checks the rules as the events app checks its file (422 `invalid_rules` naming the rule
    and the field) and publishes them on `harclip.control`; every events app applies them."""
    try:
        rules = rules_from_data({"rules": body.rules}, source="request")
    except RulesError as e:
        raise ApiError(422, "invalid_rules", str(e)) from None
    updated_at = now_ms()
    await publish(await clients.producer(), settings.kafka, RULES_KEY, rules.to_control(updated_at))
    control.rules = (rules, updated_at)
    log.info("%d alert rules published", len(rules.rules))
    return _doc(control.rules)
