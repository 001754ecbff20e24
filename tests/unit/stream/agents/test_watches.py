"""The watches agent without Faust or Kafka: WatchSet records applied live (bad ones refused),
watch scores of predictions -> watch.start / watch.end, states written at the commit (a dict is
the `watches` table) and read back after a drop (as after a restart)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from harclip.messages import Prediction
from harclip.watches import Watch, WatchSet, WatchSpec
from harclip.watches.firing import WatchState
from stream.agents.watches import WatchBook, WatchesAgent, WatchMetrics, table_key
from stream.continuity import Record
from stream.metrics import StreamMetrics
from tests.unit.stream.agents.test_track import Clock, Sent
from tests.unit.stream.test_tracker import pred


def watchset(version: int = 1, **spec: object) -> WatchSet:
    base: dict[str, object] = {"name": "fall", "prompts": ["a person on the floor"],
                               "streams": ["cam*"], "pinned_threshold": 0.5,
                               "min_duration_seconds": 0.4, "cooldown_seconds": 0}  # fmt: skip
    w = Watch(spec=WatchSpec.model_validate(base | spec), version=1, positive=[1.0, 0.0],
              negatives=[[0.0, 1.0]])  # fmt: skip
    return WatchSet(version=version, embed_dim=2, watches=[w])


def record(seq: int, score: float | None, *, sid: str = "cam") -> Record:
    p = pred(seq, "running", sid=sid)
    if score is not None:
        p = Prediction.model_validate(p.model_dump() | {"watches": {"fall": score}})
    return Record("preds", 0, seq, sid.encode(), p.to_json(), p.captured_at / 1000)


def agent(clock: Clock | None = None) -> tuple[WatchesAgent, dict[bytes, bytes], Sent]:
    book = WatchBook(WatchMetrics(CollectorRegistry()))
    book.on_record(watchset().model_dump_json(by_alias=True).encode())
    table: dict[bytes, bytes] = {}
    sent = Sent()
    a = WatchesAgent(book, table, sent, StreamMetrics().events, "ticks", 10_000,
                     clock or Clock(1_000))  # fmt: skip
    return a, table, sent


async def test_scores_above_the_threshold_for_min_duration_fire_once_then_end() -> None:
    a, table, sent = agent()
    scores = [0.1, 0.9, 0.9, 0.9, 0.9, 0.9, 0.1, None]  # None: left out (under the floor)
    await a.apply([record(i, s) for i, s in enumerate(scores)])
    assert [e.type for e in sent.events] == ["watch.start", "watch.end"]
    start, end = sent.events
    assert (start.watch, start.calibration, start.threshold) == ("fall", "pinned", 0.5)
    assert start.first_seq == 1 and start.start == pred(1, "x").captured_at
    assert end.end == pred(6, "x").captured_at and end.severity == "warning"
    assert len(a.sent()) == 2 and table == {}  # written at the commit
    focused: list[int] = []
    await a.write(lambda r: focused.append(r.offset))
    assert focused == [7]
    assert WatchState.from_bytes(table[table_key("cam", "fall")]).cal.samples > 0


async def test_streams_outside_the_globs_are_not_watched() -> None:
    a, _table, sent = agent()
    await a.apply([record(i, 0.9, sid="door") for i in range(10)])
    assert sent.events == [] and a.dirty == {}


async def test_the_state_survives_a_drop_through_the_table() -> None:
    a, _table, sent = agent()
    await a.apply([record(i, 0.9) for i in range(5)])
    await a.write(lambda r: None)
    a.drop()
    a.reassigned()
    await a.apply([record(i, 0.9) for i in range(5, 8)] + [record(8, 0.1)])
    assert [e.type for e in sent.events] == ["watch.start", "watch.end"]  # one episode


async def test_a_quiet_stream_ends_its_open_firing() -> None:
    clock = Clock(1_000)
    a, _table, sent = agent(clock)
    await a.apply([record(i, 0.9) for i in range(5)])
    tick = Record("ticks", 0, 0, b"cam", b"{}", 0.0)
    await a.apply([tick])
    assert [e.type for e in sent.events] == ["watch.start"]  # not quiet long enough yet
    clock.now += 10_000
    await a.apply([tick])
    assert [e.type for e in sent.events] == ["watch.start", "watch.end"]
    assert sent.events[1].end == pred(4, "x").captured_at


def test_a_malformed_or_older_watchset_is_refused_and_the_watches_stay() -> None:
    book = WatchBook(WatchMetrics(CollectorRegistry()))
    book.on_record(watchset(version=3).model_dump_json(by_alias=True).encode())
    book.on_record(b'{"schema": "harclip.watches/1", "version": 4, "embed_dim": 0}')
    book.on_record(b"not json")
    assert book.metrics.refused._value.get() == 2
    book.on_record(watchset(version=2, name="other").model_dump_json(by_alias=True).encode())
    assert list(book.watches) == ["fall"] and book.version == 3
    assert [w.spec.name for w in book.for_stream("cam1")] == ["fall"]
    book.on_record(WatchSet(version=5, embed_dim=2).model_dump_json(by_alias=True).encode())
    assert book.for_stream("cam1") == ()  # removed: live


def test_webhooks_of_a_watch() -> None:
    book = WatchBook(WatchMetrics(CollectorRegistry()))
    book.set(watchset(webhooks=["https://example.org/hook"]))
    assert book.webhooks("fall") == ["https://example.org/hook"]
    assert book.webhooks("nope") == [] and book.webhooks(None) == []
