"""The feedback adapter end to end (real Kafka, Redis, Elasticsearch, an in-process worker):
feedback documents seeded into the test's feedback index -> `build` -> the gate -> harclip.control
-> the running worker's next predictions; a worse candidate stays out; rollback; a label learnt
from examples alone."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import numpy as np
import pytest
from aiokafka import AIOKafkaProducer

from consumers.worker import Worker
from harclip.adapt import gate
from harclip.config import Settings
from harclip.engines import create_engine
from harclip.io import search
from harclip.io.es import make_es
from harclip.io.events import list_event_streams, read_events, write_outputs
from harclip.io.indices import ensure_templates
from harclip.io.kafka import send_frame
from harclip.io.store import make_redis
from harclip.messages import Event, Frame, ModelRef, Prediction, new_frame_id, now_ms
from harclip.messages.feedback import Feedback
from harclip.model.bundle import Bundle
from harclip.model.preprocess import decode_image
from tests.support.kafka import read_topic
from tests.support.processes import env_of, run_python
from tests.support.scoped import Unique
from tests.support.worker import predicted, producer, running_worker, worker_settings

TIMEOUT_S = 90.0
KNOWN = ("cycling", "sleeping")  # feedback confirms these labels
TAUGHT = "texting"  # photos of this class are labelled with a label the head does not have
NEW_LABEL = "juggling"
PER_CLASS = 8


def embed(bundle: Path, settings: Settings, photos: list[Path]) -> np.ndarray:
    """The photos' embeddings with the engine the worker runs (onnx), [N, D]."""
    b = Bundle.load(bundle)
    engine = create_engine(b, "onnx", settings.model)
    try:
        size = b.manifest.image_size
        px = [
            decode_image(p.read_bytes(), size, max_pixels=settings.model.max_pixels) for p in photos
        ]
        return engine.embed(np.stack(px))
    finally:
        engine.close()


async def seed(s: Settings, bundle: Path, photos: list[Path], labels: list[str]) -> None:
    """Each photo judged in two frames of stream cam-1 (the camera saw the scene twice)."""
    m = Bundle.load(bundle).manifest
    ref = ModelRef(name=m.name, version=str(m.version), head_version=1)
    emb = embed(bundle, s, photos)
    es = make_es(s.elasticsearch)
    try:
        at = now_ms() - 60_000
        for i, (e, label) in enumerate(zip(emb, labels, strict=True)):
            for copy in range(2):
                n = 2 * i + copy
                fb = Feedback(feedback_id=f"fb-{n}", target="frame", frame_id=f"fr-{n}",
                              stream_id="cam-1", verdict="wrong", label=label, by="ops",
                              given_at=at + n, model=ref, embedding=e.tolist())  # fmt: skip
                await es.index(index=s.elasticsearch.feedback_index, id=fb.feedback_id,
                               document=fb.to_dict())  # fmt: skip
        await es.indices.refresh(index=s.elasticsearch.feedback_index)
    finally:
        await es.close()


async def predict_once(
    s: Settings, p: AIOKafkaProducer, worker: Worker, seq: int, photo: Path
) -> Prediction:
    """Send `photo` as frame `seq` of cam-1 and return its Prediction."""
    before = predicted(worker)
    at = now_ms()
    await (await send_frame(p, s.kafka.topics.frames, Frame(new_frame_id(at), "cam-1", seq, at,
                                                            photo.read_bytes())))  # fmt: skip
    await worker.wait_for(lambda: predicted(worker) > before, TIMEOUT_S)
    records = await read_topic(s, s.kafka.topics.predictions)
    preds = [Prediction.from_json(r.value) for r in records]
    return next(x for x in preds if x.seq == seq)


@pytest.fixture
def photos(sample_photos: list[Path]) -> dict[str, list[Path]]:
    by: dict[str, list[Path]] = {}
    for p in sample_photos:
        by.setdefault(p.parent.name, []).append(p)
    return {c: by[c][:PER_CLASS] for c in (*KNOWN, TAUGHT)}


async def test_an_adapter_passes_the_gate_reaches_the_worker_and_rolls_back(
    unique: Unique, tiny_bundle: Path, photos: dict[str, list[Path]]
) -> None:
    s = worker_settings(unique.settings, tiny_bundle, max_age_ms=60_000)
    s = s.model_copy(update={"model": s.model.model_copy(update={"engine": "onnx"})})
    shown, labels = [], []
    for c, ps in photos.items():
        shown += ps
        labels += [NEW_LABEL if c == TAUGHT else c] * len(ps)
    await seed(s, tiny_bundle, shown, labels)
    taught = photos[TAUGHT][0]
    async with running_worker(s) as worker, producer(s) as p:
        before = await predict_once(s, p, worker, 0, taught)
        assert before.model.adapter is None and NEW_LABEL not in {x.label for x in before.top_k}

        report = await gate.build(s)  # champion: none (the random head)
        assert report.promoted and report.items == 2 * len(shown)
        assert report.candidate_score is not None and report.champion_score is not None
        assert report.candidate_score >= report.champion_score + s.adapt.margin
        v1 = report.candidate
        await worker.wait_for(lambda: worker.adapters.adapter is not None, TIMEOUT_S)
        after = await predict_once(s, p, worker, 1, taught)
        assert after.model.adapter == v1  # no restart: the next prediction carries it
        assert after.label == NEW_LABEL  # a label learnt from examples alone

        worse = s.model_copy(update={"adapt": s.adapt.model_copy(update={"per_label_cap": 1})})
        report2 = await gate.build(worse)
        assert not report2.promoted and report2.champion == v1
        assert report2.candidate_score is not None and report2.champion_score is not None
        assert report2.candidate_score < report2.champion_score
        st = await gate.status(s)
        assert st["in_force"]["version"] == v1 and report2.candidate in st["kept"]

        await gate.promote(s, report2.candidate)  # by hand, past the gate
        await worker.wait_for(lambda: _version(worker) == report2.candidate, TIMEOUT_S)
        back = await gate.rollback(s)
        assert back is not None and back.version == v1
        await worker.wait_for(lambda: _version(worker) == v1, TIMEOUT_S)
        again = await predict_once(s, p, worker, 2, taught)
        assert again.model.adapter == v1 and again.label == NEW_LABEL
    st = await gate.status(s)
    assert [e["action"] for e in st["history"]] == ["rollback", "manual", "gate"]
    assert all(e["event_sent"] for e in st["history"]) and st["event_failures"] == 0

    # every change of the adapter in force is an adapter.promoted event on harclip.events
    records = await read_topic(s, s.kafka.topics.events)
    events = [Event.from_json(r.value) for r in records]
    assert all(r.key == b"*" for r in records)
    assert [e.type for e in events] == ["adapter.promoted"] * 3
    changes = [e.adapter for e in events]
    assert all(c is not None for c in changes)
    assert [(c.reason, c.version, c.previous) for c in changes if c is not None] == [
        ("gate", v1, None), ("manual", report2.candidate, v1), ("rollback", v1, report2.candidate)
    ]  # fmt: skip
    assert [e.event_id for e in events] == [h["event_id"] for h in reversed(st["history"])]
    assert [e.stream_id for e in events] == ["*"] * 3
    assert events[0].model is not None and events[0].model.adapter == v1
    await _outputs_take(s, events)


async def _outputs_take(s: Settings, events: list[Event]) -> None:
    """What the events app's outputs agent does with them (stream/outputs.py): Elasticsearch
    and Redis take the deployment-wide events; /events (search.events) and /ws/events (the
    Redis events streams) read them back; a replay adds nothing."""
    es, r = make_es(s.elasticsearch), make_redis(s.redis)
    try:
        await ensure_templates(es, s.elasticsearch)
        for _ in range(2):  # the second time: a replay
            await search.index_events(es, s.elasticsearch, events)
            await write_outputs(r, s.redis, events, {}, maxlen=100)
        await es.indices.refresh(index=f"{s.elasticsearch.events_index}-*")
        page = await search.events(es, s.elasticsearch, stream_id="*", type_="adapter.promoted")
        assert [e.event_id for e in page.items] == [e.event_id for e in reversed(events)]
        assert page.items[0].adapter == events[-1].adapter
        assert await list_event_streams(r, s.redis) == ["*"]
        live = await read_events(r, s.redis, ["*"])
        assert [e for _, e in live] == events
    finally:
        await es.close()
        await r.aclose()


async def test_build_if_new_waits_for_enough_new_feedback(
    unique: Unique, tiny_bundle: Path, photos: dict[str, list[Path]]
) -> None:
    s = worker_settings(unique.settings, tiny_bundle)
    report = await gate.build(s, if_new=1)
    assert report.skipped and report.new_items == 0  # no feedback index yet
    report = await gate.build(s)
    assert report.skipped and "0 usable labelled feedback items" in report.skipped
    shown = [p for ps in photos.values() for p in ps]
    await seed(s, tiny_bundle, shown, [p.parent.name for p in shown])
    report = await gate.build(s, if_new=10_000, dry_run=True)
    assert report.skipped and report.new_items == 2 * len(shown)
    report = await gate.build(s, if_new=1, dry_run=True)
    assert report.skipped is None and report.candidate is not None
    assert (await gate.status(s))["kept"] == []  # a dry run keeps nothing
    cli = await asyncio.to_thread(run_python, "harclip", "adapt", "build", "--if-new", "1",
                                  "--json", env=env_of(s))  # fmt: skip
    assert cli.returncode == 0, cli.stderr
    built = json.loads(cli.stdout.strip().splitlines()[-1])
    assert built["promoted"] and built["items"] == 2 * len(shown)
    (ev,) = [Event.from_json(r.value) for r in await read_topic(s, s.kafka.topics.events)]
    assert ev.adapter is not None and (ev.adapter.reason, ev.adapter.version) == (
        "gate", built["candidate"]
    )  # fmt: skip
    again = await asyncio.to_thread(run_python, "harclip", "adapt", "build", "--if-new", "1",
                                    env=env_of(s))  # fmt: skip
    assert again.returncode == 0 and "not built: 0 new feedback items" in again.stdout
    st = await asyncio.to_thread(run_python, "harclip", "adapt", "status", env=env_of(s))
    assert f"in force: adapter v{built['candidate']}" in st.stdout, st.stdout + st.stderr


def _version(worker: Worker) -> int | None:
    a = worker.adapters.adapter
    return None if a is None else int(a.version)
