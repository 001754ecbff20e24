"""Watches on the real services: a watch PUT through the API reaches a running worker's
predictions without a restart (for its streams only), a malformed one is refused naming the field
while the previous stays, and DELETE removes it from the next predictions."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest
from aiokafka import AIOKafkaProducer

from harclip.client.errors import BadRequest, NotFound
from harclip.config import Settings
from harclip.io.kafka import send_frame
from harclip.messages import Frame, Prediction, new_frame_id, now_ms
from harclip.model.bundle import Bundle
from harclip.watches import WatchSpec
from harclip.watches.holder import WatchHolder
from tests.support.api import ADMIN_KEY, Serve, index_history, prediction
from tests.support.kafka import read_topic
from tests.support.scoped import Unique
from tests.support.worker import predicted, producer, running_worker, worker_settings

TIMEOUT_S = 90.0


def _embed(bundle: Path, settings: Settings, data: bytes) -> np.ndarray:
    """float32 [D]: the image as the onnx engine embeds it (an example frame's history)."""
    from harclip.engines import create_engine
    from harclip.model.preprocess import decode_image

    b = Bundle.load(bundle)
    engine = create_engine(b, "onnx", settings.model)
    try:
        pixels = decode_image(data, b.manifest.image_size, max_pixels=10**7)
        return engine.embed(pixels[None])[0]  # type: ignore[no-any-return]
    finally:
        engine.close()


async def _send(p: AIOKafkaProducer, s: Settings, stream: str, seq: int, data: bytes) -> str:
    at = now_ms()
    f = Frame(new_frame_id(at), stream, seq, at, data)
    await (await send_frame(p, s.kafka.topics.frames, f))
    return f.frame_id


def _version_is(holder: WatchHolder, version: int) -> bool:
    return holder.watch_set.version == version


async def test_a_watch_reaches_the_worker_live_and_leaves_it(
    serve: Serve, unique: Unique, tiny_bundle: Path, sample_photos: list[Path]
) -> None:
    data = sample_photos[0].read_bytes()
    example = prediction("cam-hist", 0, "running", 0.5)
    vector = _embed(tiny_bundle, unique.settings, data)
    await index_history(unique.settings.elasticsearch, tiny_bundle, [(example, vector)])
    s = worker_settings(unique.settings, tiny_bundle, max_age_ms=600_000)
    spec = WatchSpec(name="door-watch", examples=[example.frame_id], streams=["door-*"])
    async with serve() as client, running_worker(s) as worker, producer(s) as p:
        assert (await client.list_watches()).watches == []
        info = await client.put_watch("door-watch", spec, create=True)
        assert info.version == 1 and info.spec == spec and info.negatives == 2
        doc = await client.list_watches()
        await worker.wait_for(lambda: _version_is(worker.watches, doc.version), TIMEOUT_S)
        ids = {await _send(p, s, "door-1", 0, data): "door", await _send(p, s, "yard", 0, data): ""}
        await worker.wait_for(lambda: predicted(worker) >= 2, TIMEOUT_S)

        # refused: the previous watch stays, in the API and in the worker
        with pytest.raises(BadRequest) as bad:
            await client.put_watch("door-watch", {"prompts": ["x"], "window": 0})
        assert bad.value.status == 422 and "window" in str(bad.value)
        with pytest.raises(BadRequest, match=r"prompts: .*at least one prompt or example"):
            await client.put_watch("door-watch", {"prompts": []})
        with pytest.raises(BadRequest, match=r"prompts: List should have at most 16"):
            await client.put_watch("door-watch", {"prompts": ["x"] * 10_000})
        with pytest.raises(BadRequest, match=r"negatives\[0\]"):
            await client.put_watch("door-watch", {"prompts": ["x"], "negatives": [""]})
        with pytest.raises(BadRequest) as long:
            await client.put_watch("door-watch", {"prompts": ["a " * 100]})
        assert "prompts[0]" in str(long.value)
        with pytest.raises(NotFound) as unknown:
            await client.put_watch("door-watch", {"examples": ["no-such-frame"]})
        assert "examples[0]" in str(unknown.value) and "no-such-frame" in str(unknown.value)
        with pytest.raises(BadRequest) as twice:
            await client.put_watch("door-watch", spec, create=True)
        assert twice.value.status == 409
        with pytest.raises(BadRequest, match="name"):
            await client.put_watch("door-watch", {"name": "other", "prompts": ["x"]})
        assert (await client.list_watches()).version == doc.version
        assert (await client.get_watch("door-watch")).spec == spec

        after = await client.delete_watch("door-watch")
        assert after.watches == [] and after.version > doc.version
        with pytest.raises(NotFound):
            await client.get_watch("door-watch")
        await worker.wait_for(lambda: _version_is(worker.watches, after.version), TIMEOUT_S)
        ids[await _send(p, s, "door-1", 1, data)] = "gone"
        await worker.wait_for(lambda: predicted(worker) >= 3, TIMEOUT_S)

    preds = [Prediction.from_json(r.value) for r in await read_topic(s, s.kafka.topics.predictions)]
    by_kind = {ids[x.frame_id]: x for x in preds if x.frame_id in ids}
    assert set(by_kind["door"].watches) == {"door-watch"}
    assert by_kind["door"].watches["door-watch"] > 0.5  # the example itself
    assert by_kind[""].watches == {} and by_kind["gone"].watches == {}


async def test_the_cli_adds_lists_and_removes_through_the_api(
    serve: Serve, capsys: pytest.CaptureFixture[str]
) -> None:
    from harclip.cli import main

    async with serve() as client:
        base = ["watch", "--api", client.url, "--api-key", ADMIN_KEY]
        add = [*base, "add", "climb", "--prompt", "someone climbing a fence", "--streams", "yard*",
               "--window", "3", "--false-alarms-per-hour", "0.5"]  # fmt: skip
        assert await asyncio.to_thread(main, add) == 0
        assert "climb v1 [yard*] window 3" in capsys.readouterr().out
        assert await asyncio.to_thread(main, add) == 2  # exists: --replace to change it
        assert "409" in capsys.readouterr().err
        bad = [*base, "add", "nan", "--prompt", "x", "--false-alarms-per-hour", "nan"]
        with pytest.raises(SystemExit) as refused:  # a usage error, before any request
            await asyncio.to_thread(main, bad)
        assert refused.value.code == 2
        err = capsys.readouterr().err
        assert "--false-alarms-per-hour: expected a finite number > 0, got 'nan'" in err
        bad = [*base, "add", "big", "--prompt", "x", "--false-alarms-per-hour", "1e9"]
        assert await asyncio.to_thread(main, bad) == 2  # in range here, refused by the API
        assert "false_alarms_per_hour" in capsys.readouterr().err
        assert await asyncio.to_thread(main, [*base, "list"]) == 0
        assert "1 watches in force" in capsys.readouterr().out
        assert await asyncio.to_thread(main, [*base, "rm", "climb"]) == 0
        assert (await client.list_watches()).watches == []
        assert await asyncio.to_thread(main, [*base, "rm", "climb"]) == 2
        assert "no watch named 'climb'" in capsys.readouterr().err


async def test_an_uploaded_example_image_becomes_a_frame_of_the_history(
    serve: Serve, sample_photos: list[Path]
) -> None:
    async with serve() as client:
        with pytest.raises(BadRequest) as corrupt:
            await client.upload_watch_example(b"not an image at all", "x.jpg")
        assert corrupt.value.status in (415, 422)
        up = await client.upload_watch_example(sample_photos[0].read_bytes(), "a.jpg")
        assert up.stream_id == "watch-examples"
        info = await client.put_watch("looks-like", {"examples": [up.frame_id]})
        assert info.spec.examples == [up.frame_id] and info.version == 1
        hits = (await client.search_similar(image=sample_photos[0].read_bytes(), k=1)).hits
        assert hits[0].prediction.frame_id == up.frame_id
