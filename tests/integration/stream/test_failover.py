"""Two app workers share the partitions; one is SIGKILLed mid-sequence and the other takes its
streams, continuing their open segments from the changelog; then a fresh worker (new data
folder: its state comes only from Kafka) joins and takes some back. Every stream ends with
exactly its true events, and Elasticsearch holds each event once."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import murmur2

from harclip.io.es import make_es
from harclip.messages import Event
from tests.support.es import hits_until
from tests.support.events import PARTITIONS, app_env, events, script, send, start_app, stop_app
from tests.support.scoped import Unique

TRUTH = [
    ("stream.up", None), ("segment.start", "running"), ("segment.end", "running"),
    ("segment.start", "fighting"), ("segment.end", "fighting"), ("segment.start", "running"),
]  # fmt: skip


def _streams(per_partition: int = 2) -> list[str]:
    """Stream ids that put `per_partition` streams on each partition."""
    out: list[str] = []
    by_part: Counter[int] = Counter()
    i = 0
    while len(out) < per_partition * PARTITIONS:
        sid = f"cam-{i}"
        part = (murmur2(sid.encode()) & 0x7FFFFFFF) % PARTITIONS
        if by_part[part] < per_partition:
            by_part[part] += 1
            out.append(sid)
        i += 1
    return out


def _unique(evs: list[Event]) -> dict[str, Event]:
    return {e.event_id: e for e in evs}


async def test_a_killed_worker_s_streams_continue_on_the_others(
    unique: Unique, producer: AIOKafkaProducer, tmp_path: Path
) -> None:
    s = unique.settings
    env = app_env(s, tmp_path / "a", idle_timeout_s=300)
    streams = _streams()
    scripts = {sid: script(sid, phases=("running", "fighting", "running")) for sid in streams}

    def part(lo: int, hi: int) -> list:  # type: ignore[type-arg]
        return [p for sid in streams for p in scripts[sid][lo:hi]]

    def all_have(type_: str, label: str | None = None):  # type: ignore[no-untyped-def]
        return lambda evs: (
            {e.stream_id for e in evs if e.type == type_ and e.label == label} >= set(streams)
        )

    def complete(evs: list[Event]) -> bool:
        """Every stream has all its true events (or more: the checks below say which)."""
        have = Counter((e.stream_id, e.type, e.label) for e in _unique(evs).values())
        want = Counter(TRUTH)
        return all(have[(sid, *k)] >= n for sid in streams for k, n in want.items())

    a = await start_app(env)
    b = await start_app({**env, "HARCLIP_STREAM__DATADIR": str(tmp_path / "b")})
    a2 = None
    try:
        await send(producer, s, part(0, 40))  # running
        await events(s, until=all_have("segment.start", "running"))
        await stop_app(a, kill=True)  # SIGKILL mid-sequence
        await send(producer, s, part(0, 70))  # a replay of 0-39 and the switch to fighting
        await events(s, until=all_have("segment.start", "fighting"), timeout_s=90)
        # a fresh worker with an empty data folder joins; its partitions' state comes from Kafka
        a2 = await start_app({**env, "HARCLIP_STREAM__DATADIR": str(tmp_path / "a2")})
        await send(producer, s, part(70, 150))
        # the step that ends "fighting" emits two events; a read may end between them
        got = await events(s, until=complete, timeout_s=90)
        assert b.returncode is None and a2.returncode is None

        final = _unique(got)
        for sid in streams:
            mine = sorted(
                (e for e in final.values() if e.stream_id == sid),
                key=lambda e: (e.first_seq or 0, TRUTH.index((e.type, e.label))),
            )
            assert [(e.type, e.label) for e in mine] == TRUTH, sid
            run_end, fight_start, fight_end, run2 = mine[2], mine[3], mine[4], mine[5]
            # the segments went on across the kill and the rebalance: no frame lost or doubled
            assert run_end.first_seq == 0 and run_end.frames == fight_start.first_seq
            assert fight_end.first_seq == fight_start.first_seq
            assert fight_end.last_seq + 1 == run2.first_seq  # type: ignore[operator]
            assert fight_end.frames == run2.first_seq - fight_end.first_seq  # type: ignore[operator]
            for seg, truth in ((fight_start, 50), (run2, 100)):
                assert abs(seg.start - scripts[sid][truth].captured_at) <= 1000  # type: ignore[operator]

        await b.wait_metric("harclip_stream_outputs_written_total", 1)
        es = make_es(s.elasticsearch)
        try:
            index = s.elasticsearch.events_index
            # outputs are written after the events; wait until all are there
            hits = await hits_until(es, index, lambda hits: len(hits) >= len(final),
                                    size=1000, source=False, query={"match_all": {}})  # fmt: skip
            ids = [h["_id"] for h in hits]
            assert sorted(ids) == sorted(final)  # one document per event, none twice
        finally:
            await es.close()
    finally:
        for app in (a, b, a2):
            if app is not None:
                print("=====", "".join(app.log[-40:]))
            if app is not None and app.returncode is None:
                await stop_app(app)
