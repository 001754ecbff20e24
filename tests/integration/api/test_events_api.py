"""What the events app wrote, read through the API and the client: GET /events (Elasticsearch),
/streams/{id}/action and /stats (Redis), the live /ws/events feed, and GET/PUT /rules on the real
harclip.control topic."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from harclip.client import AsyncClient, BadRequest, NotFound, Subscription, Unauthorized
from harclip.io import events as ev
from harclip.io import search, store
from harclip.io.es import make_es
from harclip.io.indices import ensure_templates
from harclip.messages import (
    Event,
    EventType,
    StreamAction,
    StreamStats,
    WindowStats,
    action_of,
    event_id,
)
from harclip.wire import EventMessage
from tests.support.api import T0, Serve, wait_subscribed
from tests.support.scoped import Unique


def event(stream_id: str, type_: EventType, seq: int, label: str | None = None, **kw: object
          ) -> Event:  # fmt: skip
    at = T0 + seq * 100
    return Event(
        event_id=event_id(stream_id, type_, seq, kw.get("rule")),  # type: ignore[arg-type]
        type=type_, stream_id=stream_id, label=label, start=at, first_seq=seq, last_seq=seq,
        frames=1, emitted_at=at + 50, **kw,  # type: ignore[arg-type]
    )  # fmt: skip


async def write_events(unique: Unique, items: list[Event]) -> None:
    """As the events app writes them: Redis (events streams, actions) and Elasticsearch."""
    s = unique.settings
    r = store.make_redis(s.redis)
    es = make_es(s.elasticsearch)
    try:
        actions = {a.stream_id: a for e in items if (a := action_of(e)) is not None}
        await ev.write_outputs(r, s.redis, items, actions, maxlen=1000)
        await ensure_templates(es, s.elasticsearch)
        await search.index_events(es, s.elasticsearch, items)
        await es.indices.refresh(index=s.elasticsearch.events_index)
    finally:
        await r.aclose()
        await es.close()


async def take(sub: Subscription[EventMessage], n: int) -> list[EventMessage]:
    got: list[EventMessage] = []

    async def run() -> None:
        async for m in sub:
            got.append(m)
            if len(got) == n:
                return

    await asyncio.wait_for(run(), 30)
    return got


@pytest.fixture
async def api(serve: Serve) -> AsyncIterator[AsyncClient]:
    async with serve() as client:
        yield client


async def test_events_action_stats_and_live(api: AsyncClient, unique: Unique) -> None:
    first = [
        event("cam-e", "stream.up", 0),
        event("cam-e", "segment.start", 1, "running", score_mean=0.8),
        event("cam-f", "segment.start", 2, "eating", score_mean=0.7),
    ]
    await write_events(unique, first)

    # The live feed of one stream from now, and of every stream from the start.
    live = api.subscribe_events("cam-e")
    receiving = asyncio.ensure_future(take(live, 2))
    await wait_subscribed(live)
    everything = api.subscribe_events(None, after={"cam-e": "0-0", "cam-f": "0-0"})
    caught_up = await take(everything, 3)  # in order within each stream
    assert sorted((m.stream_id, m.id, m.event) for m in caught_up) == [
        (m.stream_id, m.id, e)
        for m, e in zip(sorted(caught_up, key=lambda m: (m.stream_id, m.id)), first, strict=True)
    ]
    await everything.close()

    later = [
        event("cam-e", "alert", 30, "running", rule="run", severity="critical", score_mean=0.9),
        event("cam-e", "segment.end", 40, "running", end=T0 + 4000),
    ]
    await write_events(unique, later)
    got = await receiving
    assert [m.event for m in got] == later and all(m.stream_id == "cam-e" for m in got)
    await live.close()
    resumed = api.subscribe_events("cam-e", after=got[0].id)  # resume after the alert
    assert [m.event for m in await take(resumed, 1)] == later[1:]
    await resumed.close()

    # REST: newest first by start, filters, pages.
    page = await api.events(stream_id="cam-e")
    assert [e.type for e in page.items] == ["segment.end", "alert", "segment.start", "stream.up"]
    alerts = await api.events(type="alert", severity="critical")
    assert [e.rule for e in alerts.items] == ["run"]
    assert (await api.events(label="eating")).items == [first[2]]
    window = await api.events(start_ms=T0 + 100, end_ms=T0 + 3000)
    assert {e.event_id for e in window.items} == {first[1].event_id, first[2].event_id}
    p1 = await api.events(size=2)
    assert p1.next is not None and len(p1.items) == 2
    p2 = await api.events(size=2, cursor=p1.next)
    p3 = await api.events(size=2, cursor=p2.next) if p2.next else None
    seen = [e.event_id for e in p1.items + p2.items + (p3.items if p3 else [])]
    assert len(seen) == len(set(seen)) == 5
    with pytest.raises(BadRequest) as e:
        await api.events(cursor="not-a-cursor")
    assert (e.value.status, e.value.code) == (422, "invalid_cursor")
    with pytest.raises(BadRequest) as e:
        await api.events(type="explosion")
    assert e.value.status == 422

    # The current action (Redis), and none for a stream the app never saw.
    action = await api.stream_action("cam-e")
    assert isinstance(action, StreamAction)
    assert (action.state, action.label, action.since) == ("active", "running", T0 + 100)
    with pytest.raises(NotFound):
        await api.stream_action("cam-nothing")

    # Statistics appear once the app wrote them.
    with pytest.raises(NotFound):
        await api.stream_stats("cam-e")
    minute = WindowStats(
        start=T0, end=T0 + 60_000, seconds={"running": 3.9}, segments={"running": 1}
    )
    stats = StreamStats(stream_id="cam-e", minutes=[minute], hour=minute, updated_at=T0)
    r = store.make_redis(unique.settings.redis)
    try:
        await ev.write_stats(r, unique.settings.redis, [stats])
    finally:
        await r.aclose()
    assert await api.stream_stats("cam-e") == stats


async def test_rules_published_and_read_back(serve: Serve) -> None:
    rule = {"name": "fight", "label": "fighting", "min_score": 0.6, "for_seconds": 2.0,
            "severity": "critical"}  # fmt: skip
    async with serve() as admin:
        before = await admin.rules()
        assert (before.published, before.rules) == (False, [])
        put = await admin.set_rules([rule])
        assert put.published and put.rules == [rule] and put.updated_at
        assert await admin.rules() == put

        with pytest.raises(BadRequest) as e:
            await admin.set_rules([{"name": "bad", "label": "x", "min_score": 3}])
        assert (e.value.status, e.value.code) == (422, "invalid_rules")
        assert "'bad'" in e.value.message and "min_score" in e.value.message
        with pytest.raises(BadRequest) as e:
            await admin.set_rules([rule, rule])
        assert "used twice" in e.value.message
        assert await admin.rules() == put  # refused rules change nothing

    # Another API replica reads them from harclip.control at start; anonymous clients may read
    # but not write.
    async with serve(api_key=None) as anonymous:
        assert await anonymous.rules() == put
        with pytest.raises(Unauthorized):
            await anonymous.set_rules([])


async def test_rules_with_infinite_numbers_are_refused(serve: Serve) -> None:
    """1e400 and "Infinity" would be published as null (and refused by the events app while
    this replica shows them): finite numbers only."""
    async with serve() as admin:
        h = admin._http
        for body in (
            b'{"rules": [{"name": "a", "label": "x", "cooldown_seconds": 1e400}]}',
            b'{"rules": [{"name": "a", "label": "x", "for_seconds": "Infinity"}]}',
            b'{"rules": [{"name": "a", "stream_down_after_seconds": "NaN"}]}',
        ):
            r = await h.put("/rules", content=body, headers={"content-type": "application/json"})
            assert r.status_code == 422, r.text
            assert r.json()["error"]["code"] == "invalid_rules"
        assert (await admin.rules()).published is False
