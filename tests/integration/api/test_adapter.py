"""The API follows the `adapter` key of harclip.control: `/predict` answers with the adapter in
force (its version in `model.adapter`, a label it learnt from examples), and a malformed or
mis-sized record is refused while the previous adapter stays."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np

from api.runtime import Runtime
from harclip.adapt.cache import Adapter
from harclip.adapt.holder import Published
from harclip.control import ADAPTER_KEY, publish
from harclip.io.topics import start_producer
from tests.support.api import Serve
from tests.support.scoped import Unique

TIMEOUT_S = 60.0


async def test_predict_applies_the_adapter_published_on_the_control_topic(
    serve: Serve, unique: Unique, sample_photos: list[Path]
) -> None:
    photo = sample_photos[0].read_bytes()
    async with serve() as client:
        before = await client.predict_bytes(photo)
        assert before.model.adapter is None
        runtime: Runtime = client.app.state.runtime  # type: ignore[attr-defined]
        (scored,) = await runtime.predictor.predict([("photo", photo)], 5)
        key = scored.embedding / np.linalg.norm(scored.embedding)
        m = runtime.predictor.bundle.manifest
        adapter = Adapter(version=5, scopes=("*",), labels=("juggling",),
                          keys=key[None, :].astype(np.float32), values=np.zeros(1, np.int32),
                          scope_of=np.zeros(1, np.int32), alpha=3.0, beta=50.0,
                          model=f"{m.name}/{m.version}")  # fmt: skip
        swapped = asyncio.Event()
        runtime.predictor.adapters.on_change(swapped.set)
        producer = await start_producer(unique.settings.kafka)
        try:
            k = unique.settings.kafka
            three = np.ones((1, 3), np.float32) / 3**0.5  # the model's embeddings are not 3-dim
            wrong = Adapter(version=9, scopes=("*",), labels=("x",), keys=three,
                            values=np.zeros(1, np.int32), scope_of=np.zeros(1, np.int32),
                            alpha=1.0, beta=1.0)  # fmt: skip
            await publish(producer, k, ADAPTER_KEY, Published.now(adapter).to_control())
            await asyncio.wait_for(swapped.wait(), TIMEOUT_S)
            after = await client.predict_bytes(photo)
            assert after.model.adapter == 5 and after.label == "juggling"
            swapped.clear()
            await publish(producer, k, ADAPTER_KEY, b"{not json")
            await publish(producer, k, ADAPTER_KEY, Published.now(wrong).to_control())
            await publish(producer, k, ADAPTER_KEY, Published.now(None).to_control())  # rollback
            await asyncio.wait_for(swapped.wait(), TIMEOUT_S)  # only the last one applies
        finally:
            await producer.stop()
        final = await client.predict_bytes(photo)
        assert final.model.adapter is None and final.label != "juggling"
        metrics = runtime.metrics.registry.collect()
        refused = {s.labels["reason"]: s.value
                   for metric in metrics if metric.name == "harclip_control_refused"
                   for s in metric.samples if s.labels.get("key") == "adapter"
                   and s.name.endswith("_total")}  # fmt: skip
        assert refused == {"malformed": 1, "embed_dim": 1}
