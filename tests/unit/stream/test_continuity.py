"""Positions: each agent applies each partition's records once and in order, whatever order
and gaps the consumer delivers them in (no Kafka: a dict for the table, a fake range reader)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from stream.continuity import Positions


@dataclass
class Msg:
    topic: str
    partition: int
    offset: int


@dataclass
class Ev:
    message: Msg
    value: bytes = b""


class Stream:
    """Stands for the checkpoint's focus: the event a table read or write takes its partition
    from."""

    current: Ev | None = None

    def focus(self, ev: Ev) -> None:
        self.current = ev


@dataclass
class Rec:
    offset: int
    value: bytes


class Reader:
    def __init__(self, log: dict[tuple[str, int], list[Rec]]) -> None:
        self.log = log
        self.calls: list[tuple[str, int, int, int]] = []

    async def read(self, topic: str, partition: int, start: int, end: int) -> list[Rec]:
        self.calls.append((topic, partition, start, end))
        return [r for r in self.log[(topic, partition)] if start <= r.offset < end]


def ev(offset: int, partition: int = 0, topic: str = "t") -> Ev:
    return Ev(Msg(topic, partition, offset), f"v{offset}".encode())


def _positions(table: dict[bytes, bytes], reader: Reader) -> tuple[Positions, list[Any]]:
    recovered: list[Any] = []
    p = Positions(table, reader, lambda agent, n: recovered.append((agent, n)))  # type: ignore[arg-type]
    return p, recovered


async def test_records_in_order_are_applied_and_redelivered_ones_skipped() -> None:
    table: dict[bytes, bytes] = {}
    p, _ = _positions(table, Reader({}))
    s = Stream()
    for o in (5, 6, 7):  # no position yet: whatever comes first is new
        assert await p.admit("a", ev(o), s.focus) == []
        p.applied("a", ev(o))
    assert await p.admit("a", ev(6), s.focus) is None
    assert await p.admit("a", ev(7), s.focus) is None
    assert await p.admit("a", ev(8), s.focus) == []


async def test_a_hole_is_read_from_kafka_and_applied_first() -> None:
    log = {("t", 0): [Rec(o, f"v{o}".encode()) for o in range(20)]}
    reader = Reader(log)
    p, recovered = _positions({}, reader)
    s = Stream()
    p.applied("a", ev(3))
    missed = await p.admit("a", ev(9), s.focus)
    assert [r.offset for r in missed or []] == [4, 5, 6, 7, 8]
    assert reader.calls == [("t", 0, 4, 9)]
    assert recovered == [("a", 5)]


async def test_a_range_kafka_no_longer_holds_passes() -> None:
    p, recovered = _positions({}, Reader({("t", 0): []}))
    p.applied("a", ev(3))
    assert await p.admit("a", ev(9), Stream().focus) == []
    assert recovered == [("a", 0)]


async def test_saved_positions_survive_a_revocation_and_reach_the_next_owner() -> None:
    table: dict[bytes, bytes] = {}
    p, _ = _positions(table, Reader({("t", 1): [Rec(o, b"") for o in range(10)]}))
    s = Stream()
    p.applied("a", ev(4, partition=1))
    p.applied("b", ev(2, partition=1))
    p.persist("a", s.focus)  # only agent a's
    assert s.current is not None and s.current.message.partition == 1  # the table's partition
    assert table == {Positions.key("a", "t", 1): b"4"}
    p.forget()
    nxt, _ = _positions(table, Reader({("t", 1): []}))
    assert await nxt.admit("a", ev(3, partition=1), s.focus) is None  # applied by the last owner
    assert await nxt.admit("a", ev(5, partition=1), s.focus) == []
    assert await nxt.admit("b", ev(0, partition=1), s.focus) == []  # b saved nothing: all new


async def test_agents_and_partitions_are_independent() -> None:
    p, _ = _positions({}, Reader({}))
    s = Stream()
    p.applied("a", ev(10, partition=0))
    assert await p.admit("a", ev(0, partition=1), s.focus) == []
    assert await p.admit("b", ev(0, partition=0), s.focus) == []
    assert await p.admit("a", ev(0, partition=0, topic="other"), s.focus) == []
