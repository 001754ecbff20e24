"""The exported bundle is served unchanged: the inference worker (Kafka in, predictions out)
and the API answer with the trained head, and agree with the bundle's own engine + head."""

from __future__ import annotations

from pathlib import Path
from typing import cast

from harclip.config import EngineName, ModelSettings
from harclip.engines import ENGINE_NAMES, create_engine
from harclip.messages import LabelScore, Prediction
from harclip.model.bundle import Bundle
from harclip.model.preprocess import preprocess_batch
from tests.integration.consumers.test_worker import frame, send
from tests.support.api import serve_app
from tests.support.kafka import read_topic
from tests.support.scoped import Unique
from tests.support.training import CLASSES, TrainedRun
from tests.support.worker import predicted, producer, running_worker, worker_settings

TIMEOUT_S = 90.0


# How far a served probability may be from the one computed here for the same image. The engine
# that served may be the int8 encoder (`engine` `auto` picks it when it validated), and dynamic
# quantization scales activations over the whole batch, so an image's probabilities move a
# little with the images it was batched with (measured: up to 0.004 on this test's photos; fp32:
# 2e-7); the tiny trained model has near-ties (top-2 margins down to 0.004), so the top-1 label
# alone may differ while both answers are right.
TOLERANCE = 0.02


def _expected(bundle: Bundle, photos: list[Path], engine_label: str) -> list[dict[str, float]]:
    """Per photo, every label's probability from the bundle's engine that served and its head,
    computed here in one batch."""
    assert engine_label in ENGINE_NAMES, f"a CPU engine's label is its name: {engine_label}"
    name = cast(EngineName, engine_label)
    images, errors = preprocess_batch([p.read_bytes() for p in photos], 224, max_pixels=40_000_000)
    assert errors == [None] * len(photos)
    engine = create_engine(bundle, name, ModelSettings())
    try:
        head = bundle.load_head()
        return [dict(row) for row in head.top_k(engine.embed(images), len(head.labels))]
    finally:
        engine.close()


def _agree(served: list[tuple[str, list[LabelScore]]], expected: list[dict[str, float]]) -> None:
    """Each served answer (top label, top-k) is what the bundle computes here: every score
    within TOLERANCE, and the top label one whose probability is within it of the best."""
    assert len(served) == len(expected)
    for i, ((label, top_k), probs) in enumerate(zip(served, expected, strict=True)):
        assert probs[label] >= max(probs.values()) - TOLERANCE, (i, label, probs)
        for ls in top_k:
            assert abs(ls.score - probs[ls.label]) <= TOLERANCE, (i, ls, probs)


async def test_worker_and_api_serve_the_trained_bundle(
    unique: Unique, trained_run: TrainedRun, sample_photos: list[Path]
) -> None:
    bundle = Bundle.load(trained_run.bundle)
    head = bundle.load_head()
    assert head.kind == "fine-tuned" and head.labels == CLASSES
    photos = [p for p in sample_photos if p.parent.name in CLASSES][::9]

    s = worker_settings(unique.settings, trained_run.bundle, max_age_ms=60_000)
    async with running_worker(s) as worker, producer(s) as p:
        for i, photo in enumerate(photos):
            await send(p, s.kafka.topics.uploads, frame("job", i, photo.read_bytes()))
        await worker.wait_for(lambda: predicted(worker) >= len(photos), TIMEOUT_S)
    records = await read_topic(s, s.kafka.topics.predictions)
    preds = sorted((Prediction.from_json(r.value) for r in records), key=lambda x: x.seq)
    engines = {x.model.engine for x in preds}
    assert len(engines) == 1, engines
    _agree([(x.label, x.top_k) for x in preds], _expected(bundle, photos, str(engines.pop())))
    assert {x.model.name for x in preds} == {bundle.manifest.name}
    assert {x.model.head_version for x in preds} == {head.version}

    async with serve_app(unique.settings, trained_run.bundle) as client:
        got = [await client.predict_bytes(ph.read_bytes()) for ph in photos]
        info = await client.info()
    _agree([(r.label, r.predictions) for r in got], _expected(bundle, photos, info.engine))
    assert info.model.name == bundle.manifest.name
