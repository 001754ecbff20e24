"""harclip.io.store against the real Redis: latest wins by time, recent streams resume from an entry
id, the streams set, frames with a TTL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from harclip.config import RedisSettings
from harclip.errors import ReadUnavailable, SinkUnavailable
from harclip.io import store
from harclip.io.keys import redis_keys
from harclip.messages import LabelScore, Latency, ModelRef, Prediction, new_frame_id
from tests.support.scoped import Unique

T0 = 1_764_223_200_000  # ms since epoch


def _pred(stream_id: str, seq: int, label: str = "running") -> Prediction:
    at = T0 + 40 * seq
    return Prediction(
        frame_id=new_frame_id(at),
        stream_id=stream_id,
        seq=seq,
        captured_at=at,
        inferred_at=at + 25,
        label=label,
        score=0.9,
        top_k=[LabelScore(label=label, score=0.9), LabelScore(label="sitting", score=0.05)],
        model=ModelRef(name="tiny", version="1", head_version=1),
        latency_ms=Latency(queue=5.0, infer=12.0, total=25.0),
    )


@pytest.fixture
async def r(s: RedisSettings) -> AsyncIterator[aioredis.Redis]:
    client = store.make_redis(s)
    yield client
    await client.aclose()


@pytest.fixture
def s(unique: Unique) -> RedisSettings:
    return unique.settings.redis


async def test_latest_wins_by_capture_time_not_by_arrival(
    r: aioredis.Redis, s: RedisSettings
) -> None:
    new = [_pred("a", 5), _pred("a", 6), _pred("b", 1)]
    old = [_pred("a", 2, "sitting"), _pred("b", 0, "sitting")]
    frames = {p.frame_id: f"jpeg-{p.seq}".encode() for p in new + old}

    await store.write_predictions(r, s, new, frames)
    await store.write_predictions(r, s, old, frames)  # a late batch

    assert await store.read_latest(r, s, "a") == new[1]
    assert await store.read_latest(r, s, "b") == new[2]
    assert await store.read_latest(r, s, "nobody") is None
    assert await store.read_frame(r, s, "a") == b"jpeg-6"
    assert 0 < await r.ttl(redis_keys(s).frame("a")) <= s.frame_ttl_s
    assert await store.list_streams(r, s) == [("a", new[1].captured_at), ("b", new[2].captured_at)]
    assert await store.list_streams(r, s, since_ms=new[1].captured_at) == [
        ("a", new[1].captured_at)
    ]

    await store.write_predictions(r, s, [new[1]])  # a replay of the same frame is harmless
    assert await store.read_latest(r, s, "a") == new[1]


async def test_recent_resumes_after_an_entry_id(r: aioredis.Redis, s: RedisSettings) -> None:
    preds = [_pred("cam", i) for i in range(8)]
    await store.write_predictions(r, s, preds[:5])

    first = await store.read_recent(r, s, ["cam"], count=3)
    assert [p for _, p in first] == preds[:3]
    position = {"cam": first[-1][0]}
    rest = await store.read_recent(r, s, ["cam"], position)
    assert [p for _, p in rest] == preds[3:5]

    position = {"cam": rest[-1][0]}
    assert await store.read_recent(r, s, ["cam"], position) == []
    await store.write_predictions(r, s, preds[5:])
    assert [p for _, p in await store.read_recent(r, s, ["cam"], position)] == preds[5:]


async def test_recent_of_all_streams_from_now_and_blocking(
    r: aioredis.Redis, s: RedisSettings
) -> None:
    await store.write_predictions(r, s, [_pred("x", 0), _pred("y", 0)])
    tail = await store.tail_positions(r, s, ["x", "y", "z"])
    assert tail["z"] == "0-0"

    assert await store.read_recent(r, s, None, tail) == []  # nothing since the tail
    waiting = asyncio.create_task(store.read_recent(r, s, None, tail, block_ms=5000))
    new = _pred("y", 1)
    await store.write_predictions(r, s, [new])
    got = await waiting
    assert [p for _, p in got] == [new]


async def test_recent_is_capped(r: aioredis.Redis, unique: Unique) -> None:
    s = unique.settings.redis.model_copy(update={"recent_maxlen": 10})
    for start in range(0, 400, 100):
        await store.write_predictions(r, s, [_pred("cap", i) for i in range(start, start + 100)])
    # MAXLEN ~ trims whole radix-tree nodes (100 entries by default), so the length is approximate
    assert await r.xlen(redis_keys(s).recent("cap")) <= 10 + 100


async def test_an_unreachable_redis_is_a_retriable_sink_error(s: RedisSettings) -> None:
    dead = store.make_redis(s.model_copy(update={"url": "redis://127.0.0.1:1/0"}))
    try:
        with pytest.raises(SinkUnavailable, match="Redis") as e:
            await store.write_predictions(dead, s, [_pred("a", 0)])
        assert e.value.retriable
        with pytest.raises(ReadUnavailable, match="Redis read_latest"):
            await store.read_latest(dead, s, "a")
    finally:
        await dead.aclose()


async def test_callers_beyond_the_pool_wait_for_a_connection(s: RedisSettings) -> None:
    """More concurrent commands than `max_connections` wait for a free connection (never "Too
    many connections"); only a wait longer than `pool_timeout_s` makes Redis unavailable."""
    small = s.model_copy(update={"max_connections": 2, "pool_timeout_s": 10.0})
    client = store.make_redis(small)
    key = f"{s.key_prefix}:pool-test"
    try:
        blocked = [client.xread({key: "$"}, block=300) for _ in range(2)]  # hold both
        assert await asyncio.gather(*blocked, *(client.ping() for _ in range(20))) == [
            [], [], *[True] * 20,
        ]  # fmt: skip
    finally:
        await client.aclose()
    impatient = store.make_redis(small.model_copy(update={"pool_timeout_s": 0.05}))
    try:
        with pytest.raises(ReadUnavailable):
            await asyncio.gather(
                *(impatient.xread({key: "$"}, block=500) for _ in range(2)),
                store.last_entry_ids(impatient, [key]),
            )
    finally:
        await impatient.aclose()
