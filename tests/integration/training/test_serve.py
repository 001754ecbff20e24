"""The exported bundle is served unchanged: the inference worker (Kafka in, predictions out)
and the API answer with the trained head, and agree with the bundle's own engine + head."""

from __future__ import annotations

from pathlib import Path

from harclip.config import ModelSettings
from harclip.engines import create_engine
from harclip.messages import Prediction
from harclip.model.bundle import Bundle
from harclip.model.preprocess import preprocess_batch
from tests.integration.api.conftest import serve_app
from tests.integration.conftest import Unique
from tests.integration.consumers.conftest import (
    predicted,
    producer,
    read_topic,
    running_worker,
    worker_settings,
)
from tests.integration.consumers.test_worker import frame, send
from tests.integration.training.conftest import CLASSES, TrainedRun

TIMEOUT_S = 90.0


def _expected(bundle: Bundle, photos: list[Path]) -> list[str]:
    """Top-1 labels from the bundle's ONNX engine and head, computed here."""
    images, errors = preprocess_batch([p.read_bytes() for p in photos], 224, max_pixels=40_000_000)
    assert errors == [None] * len(photos)
    engine = create_engine(bundle, "onnx", ModelSettings())
    try:
        return [row[0][0] for row in bundle.load_head().top_k(engine.embed(images), 1)]
    finally:
        engine.close()


async def test_worker_and_api_serve_the_trained_bundle(
    unique: Unique, trained_run: TrainedRun, sample_photos: list[Path]
) -> None:
    bundle = Bundle.load(trained_run.bundle)
    head = bundle.load_head()
    assert head.kind == "fine-tuned" and head.labels == CLASSES
    photos = [p for p in sample_photos if p.parent.name in CLASSES][::9]
    expected = _expected(bundle, photos)

    s = worker_settings(unique.settings, trained_run.bundle, max_age_ms=60_000)
    async with running_worker(s) as worker, producer(s) as p:
        for i, photo in enumerate(photos):
            await send(p, s.kafka.topics.uploads, frame("job", i, photo.read_bytes()))
        await worker.wait_for(lambda: predicted(worker) >= len(photos), TIMEOUT_S)
    records = await read_topic(s, s.kafka.topics.predictions)
    preds = sorted((Prediction.from_json(r.value) for r in records), key=lambda x: x.seq)
    assert [x.label for x in preds] == expected
    assert {x.model.name for x in preds} == {bundle.manifest.name}
    assert {x.model.head_version for x in preds} == {head.version}

    async with serve_app(unique.settings, trained_run.bundle) as client:
        got = [(await client.predict_bytes(ph.read_bytes())).label for ph in photos]
        info = await client.info()
    assert got == expected
    assert info.model.name == bundle.manifest.name
