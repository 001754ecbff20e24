"""Two worker processes in one group, one SIGKILLed mid-stream: after the rebalance every frame
has its Elasticsearch document, and none has two."""

from __future__ import annotations

from pathlib import Path

from harclip.io.es import make_es
from harclip.io.kafka import send_frame
from harclip.messages import Frame, Prediction, new_frame_id, now_ms
from harclip.services.child import Child
from tests.support.es import hits_until
from tests.support.kafka import read_topic
from tests.support.processes import env_of, start
from tests.support.scoped import Unique
from tests.support.worker import PARTITIONS, producer, worker_settings

START_TIMEOUT_S = 90.0
TIMEOUT_S = 180.0


async def start_worker(env: dict[str, str], bundle: Path) -> Child:
    """A `python -m consumers` process; returns once it has logged that it has partitions."""
    proc = start("consumers", "--bundle", str(bundle), "--partitions", str(PARTITIONS),
                 "--metrics-port", "0", "--max-batch", "4", env=env)  # fmt: skip
    await proc.await_line("worker up", START_TIMEOUT_S)
    return proc


async def test_a_killed_worker_loses_nothing_and_duplicates_nothing(
    unique: Unique, tiny_bundle: Path, sample_photos: list[Path]
) -> None:
    s = worker_settings(unique.settings, tiny_bundle)
    t = s.kafka.topics
    env = env_of(s)
    photos = [p.read_bytes() for p in sample_photos[:240]]
    a = await start_worker(env, tiny_bundle)
    b = await start_worker(env, tiny_bundle)
    sent: set[str] = set()
    try:
        async with producer(s) as p:

            async def send(i: int) -> None:
                at = now_ms()
                f = Frame(new_frame_id(at), f"job-{i % 8}", i, at, photos[i])
                await send_frame(p, t.uploads, f)
                sent.add(f.frame_id)

            for i in range(120):
                await send(i)
            await p.flush()
            # both workers busy: predictions are flowing
            await read_topic(s, t.predictions, until=lambda rs: len(rs) >= 20)
            await a.astop(kill=True)
            for i in range(120, len(photos)):
                await send(i)
            await p.flush()

        def all_predicted(records: list) -> bool:  # type: ignore[type-arg]
            return {Prediction.from_json(r.value).frame_id for r in records} >= sent

        await read_topic(s, t.predictions, until=all_predicted, timeout_s=TIMEOUT_S)
        # the sinks of a batch are written side by side: Kafka may hold a batch before
        # Elasticsearch does (its keyframe thumbnails go to the object store first)
        es = make_es(s.elasticsearch)
        try:
            index = s.elasticsearch.predictions_index
            hits = await hits_until(
                es, index, lambda hits: {h["_id"] for h in hits} >= sent,
                timeout_s=TIMEOUT_S, every_s=0.5, size=len(sent) + 50, source=False,
                query={"match_all": {}},
            )  # fmt: skip
            count = (await es.count(index=index))["count"]
        finally:
            await es.close()
        ids = [h["_id"] for h in hits]
        assert set(ids) == sent
        assert count == len(ids) == len(set(ids)) == len(sent)
        assert b.returncode is None  # the survivor is still running
    finally:
        codes = [await proc.astop(60.0) for proc in (a, b)]
    assert codes[1] == 0  # SIGTERM: clean shutdown
