"""Stream ids through the real API, end to end: ids that are valid but awkward in a URL path
(`lobby #2`, `..`, `a%2Fb`) are ingested, predicted by a real worker, and read back as latest,
history and a subscription under exactly their own id; resume positions take ASCII digits only;
a subscription outlives a Redis outage."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from websockets.asyncio.client import connect

from consumers.worker import Worker
from harclip.client import BadRequest, Subscription
from harclip.io import store
from harclip.io.es import make_es
from harclip.wire import PredictionMessage
from tests.support.api import Serve, prediction, wait_subscribed
from tests.support.processes import free_port
from tests.support.scoped import Unique
from tests.support.worker import predicted, redis_server, redis_url, running_worker, worker_settings

AWKWARD_IDS = ["lobby #2", "..", "a%2Fb"]
TIMEOUT_S = 90.0


@pytest.fixture
async def worker(unique: Unique, tiny_bundle: Path) -> AsyncIterator[Worker]:
    async with running_worker(
        worker_settings(unique.settings, tiny_bundle, max_age_ms=600_000)
    ) as w:
        yield w


async def _first(sub: Subscription) -> PredictionMessage:
    async for m in sub:
        return m
    raise AssertionError("the subscription ended")


async def test_awkward_stream_ids_end_to_end(
    serve: Serve, unique: Unique, worker: Worker, sample_photos: list[Path]
) -> None:
    photo = sample_photos[0].read_bytes()
    async with serve() as client:
        subs = {sid: client.subscribe(sid) for sid in AWKWARD_IDS}
        firsts = {sid: asyncio.ensure_future(_first(sub)) for sid, sub in subs.items()}
        for sub in subs.values():
            await wait_subscribed(sub)
        acks = {sid: (await client.ingest(sid, [photo]))[0] for sid in AWKWARD_IDS}
        for sid in AWKWARD_IDS:
            got = await asyncio.wait_for(firsts[sid], TIMEOUT_S)
            assert (got.stream_id, got.prediction.frame_id) == (sid, acks[sid].frame_id)
            await subs[sid].close()
            latest = await client.latest(sid)
            assert (latest.stream_id, latest.frame_id) == (sid, acks[sid].frame_id)
        await worker.wait_for(lambda: predicted(worker) >= len(AWKWARD_IDS), TIMEOUT_S)
        es = make_es(unique.settings.elasticsearch)
        try:
            await es.indices.refresh(index=unique.settings.elasticsearch.predictions_index)
        finally:
            await es.close()
        for sid in AWKWARD_IDS:
            page = await client.history(sid)
            assert [(p.stream_id, p.frame_id) for p in page.items] == [(sid, acks[sid].frame_id)]
        listed = {s.stream_id for s in (await client.streams()).streams}
        assert listed == set(AWKWARD_IDS)
        with pytest.raises(BadRequest) as e:
            await client.ingest("a/b", [photo])
        assert (e.value.status, e.value.code) == (422, "invalid_stream_id")
        with pytest.raises(BadRequest, match="reserved for events about the whole deployment"):
            await client.ingest("*", [photo])  # the deployment's own stream: read, never sent
        raw = await client._http.get("/streams/%09tab/latest")  # refused by the server too
        assert raw.status_code == 422 and raw.json()["error"]["code"] == "invalid_stream_id"


@pytest.mark.parametrize("after", ["\u0663", "\u0663-0", "1-\u0663", "\u00b2", "\uff11-0"])
async def test_resume_positions_take_ascii_digits_only(serve: Serve, after: str) -> None:
    """Other scripts' digits pass `\\d` and `isdigit()` but not Redis: refused once with 422,
    and the subscription ends (it used to send an error every second, for ever)."""
    async with serve() as client:
        await client.info()  # started (a WebSocket handshake has a shorter timeout)
        for url in (
            client.ws_url("/ws/streams/cam", {"after": after}),
            client.ws_url("/ws/streams", {"after": json.dumps({"cam": after})}),
        ):
            messages = []
            async with connect(url) as ws:
                async for m in ws:  # until the server closes (or one message too many)
                    messages.append(json.loads(m))
                    if len(messages) > 2:
                        break
            assert [(m["type"], m.get("status")) for m in messages] == [("error", 422)], messages
            assert messages[0]["error"]["code"] == "invalid_position"
        async with connect(client.ws_url("/ws/streams/cam")) as ws:
            assert json.loads(await ws.recv())["type"] == "subscribed"
            await ws.send(json.dumps({"type": "resume", "after": after}))
            reply = json.loads(await ws.recv())
            assert (reply["type"], reply["status"]) == ("error", 422)


async def test_a_subscription_outlives_a_redis_outage(
    serve: Serve, unique: Unique, tmp_path: Path
) -> None:
    """Redis goes away under a subscribed client: the server says 503 `unavailable` (and keeps
    trying); the client waits instead of raising, and delivers again once Redis is back."""
    port = free_port()
    redis = unique.settings.redis.model_copy(update={"url": redis_url(port)})

    async def write(seq: int) -> None:
        r = store.make_redis(redis)
        try:
            await store.write_predictions(r, redis, [prediction("cam-out", seq, "running", 0.5)])
        finally:
            await r.aclose()

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    async with serve(redis=redis) as client:
        received: asyncio.Queue[PredictionMessage] = asyncio.Queue()
        sub = client.subscribe("cam-out")

        async def pump() -> None:
            async for m in sub:
                await received.put(m)

        async with redis_server(port, tmp_path / "a"):
            pumping = asyncio.ensure_future(pump())
            await wait_subscribed(sub)
            await write(0)
            assert (await asyncio.wait_for(received.get(), TIMEOUT_S)).prediction.seq == 0
        # Redis is gone: the server reports it, the subscription waits.
        await asyncio.wait_for(sub.interrupted.wait(), TIMEOUT_S)
        assert not pumping.done() and sub.unavailable >= 1
        async with redis_server(port, tmp_path / "b"):
            await write(1)
            got = await asyncio.wait_for(received.get(), TIMEOUT_S)
            assert got.prediction.seq == 1 and not sub.interrupted.is_set()
            assert not pumping.done()
        await sub.close()
        await pumping
