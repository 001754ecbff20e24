"""Evidence yields to the agents while they are behind, within its bound (a fake clock)."""

from __future__ import annotations

import asyncio
import time

from stream.evidence.pace import POLL_S, STALE_S, Behind, Deferral, Yielder

NOW_S = 1_800_000_000.0
RETENTION_S = 3600.0


class Clock:
    def __init__(self) -> None:
        self.t = NOW_S

    def __call__(self) -> float:
        return self.t


def rig(lag_s: float = 5.0, max_s: float = 120.0, retention_s: float = RETENTION_S) -> tuple[
    Clock, Behind, Yielder, list[float], list[int]
]:  # fmt: skip
    clock = Clock()
    behind = Behind(clock)
    deferred: list[float] = []
    deferring: list[int] = []

    async def sleep(s: float) -> None:
        clock.t += s
        behind.saw(behind.lag_s() and 30.0, clock.t)  # the agents are still applying a backlog
        await asyncio.sleep(0)  # other waits go on meanwhile

    y = Yielder(behind, Deferral(lag_s, max_s, retention_s), clock=clock, sleep=sleep,
                on_deferred=deferred.append, on_deferring=deferring.append)  # fmt: skip
    return clock, behind, y, deferred, deferring


def test_no_wait_while_the_agents_keep_up() -> None:
    clock, behind, y, deferred, _ = rig()
    behind.saw(0.3, clock())
    assert asyncio.run(y.wait(int(NOW_S * 1000) - 10_000)) == 0.0
    assert deferred == [] and y.deferring == 0


def test_a_stale_lag_is_no_lag() -> None:
    clock, behind, y, _, _ = rig()
    behind.saw(60.0, clock() - STALE_S - 0.1)  # the backlog is done: nothing applied since
    assert behind.lag_s() == 0.0
    assert asyncio.run(y.wait(int(NOW_S * 1000))) == 0.0


def test_waits_while_behind_until_the_agents_catch_up() -> None:
    clock, behind, y, deferred, deferring = rig()
    behind.saw(30.0, clock())
    caught_up_at = NOW_S + 7.0

    async def sleep(s: float) -> None:
        clock.t += s
        behind.saw(30.0 if clock.t < caught_up_at else 0.5, clock.t)

    y._sleep = sleep
    waited = asyncio.run(y.wait(int(NOW_S * 1000) - 10_000))
    assert 7.0 <= waited < 7.0 + 0.6
    assert deferred == [waited] and deferring == [1, 0] and y.bounded == 0


def test_the_wait_is_bounded_by_the_maximum_per_episode() -> None:
    clock, behind, y, _, _ = rig(max_s=20.0)
    behind.saw(30.0, clock())
    waited = asyncio.run(y.wait(int(NOW_S * 1000) - 10_000))  # the agents never catch up
    assert waited == 20.0 and y.bounded == 1 and y.deferring == 0
    # still behind: the head start is spent, later builds go ahead at once (no starvation)
    assert asyncio.run(y.wait(int(clock() * 1000) - 10_000)) == 0.0
    behind.saw(0.1, clock())  # caught up once: the next lag is a new episode
    assert asyncio.run(y.wait(int(clock() * 1000))) == 0.0
    behind.saw(30.0, clock())
    assert asyncio.run(y.wait(int(clock() * 1000) - 10_000)) == 20.0


def test_builds_of_one_episode_share_its_bound() -> None:
    clock, behind, y, _, _ = rig(max_s=20.0)
    behind.saw(30.0, clock())

    async def two() -> list[float]:
        first = asyncio.create_task(y.wait(int(NOW_S * 1000)))
        await asyncio.sleep(0)
        clock.t += 15.0  # a second event becomes due 15 s into the episode
        behind.saw(30.0, clock())
        second = await y.wait(int(clock() * 1000))
        return [await first, second]

    waited = asyncio.run(two())
    assert 0 < waited[1] <= 5.0  # what is left of the episode's 20 s, not 20 s more
    assert waited[0] <= 20.0 + POLL_S


def test_the_wait_ends_before_the_frames_could_expire() -> None:
    # retention 600 s: a build starts by window start + 300 s, whatever the maximum
    clock, behind, y, _, _ = rig(max_s=3600.0, retention_s=600.0)
    behind.saw(30.0, clock())
    start_ms = int((NOW_S - 290.0) * 1000)  # the window began 290 s ago: 10 s left
    assert asyncio.run(y.wait(start_ms)) == 10.0
    old_ms = int((NOW_S - 400.0) * 1000)  # already past half the retention: no wait at all
    assert asyncio.run(y.wait(old_ms)) == 0.0


def test_zero_threshold_never_defers() -> None:
    clock, behind, y, _, _ = rig(lag_s=0.0)
    behind.saw(1000.0, clock())
    assert asyncio.run(y.wait(int(NOW_S * 1000))) == 0.0


def test_the_evidence_step_waits_for_the_agents_then_builds_and_counts_it() -> None:
    from harclip.config import Settings, StreamSettings
    from harclip.messages import Event, Evidence
    from stream.evidence.build import Built, need
    from stream.evidence.service import EvidenceService
    from stream.metrics import StreamMetrics

    m = StreamMetrics()
    settings = Settings(stream=StreamSettings(evidence_defer_lag_s=5, evidence_defer_max_s=60))
    svc = EvidenceService(settings, m)
    t = time.time()
    e = Event.model_validate({"event_id": "e1", "type": "segment.end", "stream_id": "cam",
                              "label": "run", "start": int((t - 30) * 1000),
                              "end": int((t - 20) * 1000)})  # fmt: skip
    n = need(e, settings.stream)
    assert n is not None
    order: list[str] = []
    m.behind.saw(40.0, time.time())  # the agents are reading a backlog
    polls = iter(range(3))

    async def sleep(s: float) -> None:  # the agents catch up after three polls
        order.append("waited")
        if next(polls, None) is None or not svc.yielder.deferring:
            return
        m.behind.saw(40.0 if len(order) < 3 else 0.2, time.time())

    class Builds:
        async def build(self, e: Event, n: object) -> Built:
            order.append("built")
            return Built(Evidence(snapshot="s.jpg", thumbnail="t.jpg", frames=1))

    published: list[Event] = []

    async def publish(done: Event) -> None:
        published.append(done)

    svc.yielder._sleep = sleep
    svc._builds = Builds()  # type: ignore[assignment]
    svc._publish = publish  # type: ignore[method-assign]
    asyncio.run(svc._one(e, n))
    assert order == ["waited", "waited", "waited", "built"]  # built once the agents caught up
    assert published[0].evidence is not None and published[0].evidence.snapshot == "s.jpg"
    assert m.evidence_deferring._value.get() == 0
    assert m.evidence_deferred._value.get() >= 0
    assert m.evidence_backlog._value.get() == -1  # `_follow` counts it in; `_one` out
