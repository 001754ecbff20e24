"""The worker's pure steps: parsing + decoding records, running a batch, offsets, health routes."""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np
import pytest
from aiokafka.structs import TopicPartition
from prometheus_client import CollectorRegistry

from consumers.inference import run_batch
from consumers.work import BULK, LIVE, decode_records, decode_records_on_device
from harclip.batching import Batch
from harclip.control import HeadInUse
from harclip.errors import ConfigError
from harclip.health import HealthServer
from harclip.messages import Frame, ModelRef, new_frame_id, now_ms
from harclip.model.head import Head

SIZE = 32


@dataclass
class Rec:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]] = field(default_factory=list)


def jpeg(w: int = 64, h: int = 48) -> bytes:
    img = np.random.default_rng(0).integers(0, 255, (h, w, 3), dtype=np.uint8)
    return cv2.imencode(".jpg", img)[1].tobytes()


def rec(offset: int, data: bytes | None, *, captured_at: int | None = None,
        headers: bool = True) -> Rec:  # fmt: skip
    f = Frame(new_frame_id(), "s1", offset, now_ms() if captured_at is None else captured_at,
              data or b"x")  # fmt: skip
    return Rec("t", 0, offset, b"s1", data, f.headers() if headers else [])


class FakeEngine:
    name, embed_dim, image_size = "fake", 4, SIZE

    def __init__(self, rows_off: int = 0) -> None:
        self.rows_off = rows_off

    def embed(self, images: np.ndarray) -> np.ndarray:
        n = images.shape[0] + self.rows_off
        e = np.ones((n, 4), np.float32)
        return e / np.linalg.norm(e, axis=1, keepdims=True)

    def close(self) -> None:
        pass


def head(version: int = 1) -> Head:
    w = np.eye(4, 3, dtype=np.float32)
    return Head(("a", "b", "c"), w, np.array([0, 0, 1], np.float32), 100.0, version)


def test_decode_records_sorts_good_malformed_and_undecodable() -> None:
    good = jpeg()
    works = decode_records(
        [rec(0, good), rec(1, good[:200]), rec(2, b"\x00" * 50), rec(3, good, headers=False),
         rec(4, None)],
        LIVE, SIZE, max_pixels=10_000_000,
    )  # fmt: skip
    assert works[0].error is None and works[0].pixels is not None
    assert works[0].pixels.shape == (SIZE, SIZE, 3) and works[0].droppable
    assert works[1].error is not None and works[1].error.startswith("undecodable: truncated")
    assert works[2].error is not None and works[2].error.startswith("undecodable:")
    assert works[3].error == "malformed: missing header 'schema'"
    assert works[4].error is not None and works[4].error.startswith("malformed: empty frame")
    assert not any(w.droppable for w in works[1:])


def test_decode_records_maps_capture_time_onto_the_monotonic_clock() -> None:
    old, fresh = decode_records([rec(0, jpeg(), captured_at=now_ms() - 5000), rec(1, jpeg())],
                                BULK, SIZE, max_pixels=10**7)  # fmt: skip
    assert fresh.born_at - old.born_at == pytest.approx(5.0, abs=0.5)
    assert not old.droppable  # uploads are never dropped


def test_run_batch_builds_predictions_and_offsets() -> None:
    works = decode_records([rec(i, jpeg() if i != 2 else b"bad") for i in range(4)], LIVE,
                           SIZE, max_pixels=10**7)  # fmt: skip
    stale = decode_records([rec(9, jpeg())], LIVE, SIZE, max_pixels=10**7)
    in_use = HeadInUse(head(3), ModelRef(name="m", version="1", head_version=3))
    result = run_batch(Batch(items=works, stale=stale), FakeEngine(), in_use, top_k=2)
    assert [p.prediction.seq for p in result.predicted] == [0, 1, 3]
    p = result.predicted[0].prediction
    assert p.label == "c" and len(p.top_k) == 2 and p.model.head_version == 3
    assert p.latency_ms.total >= p.latency_ms.queue >= 0
    assert result.predicted[0].embedding.shape == (4,)
    assert [w.offset for w in result.failed] == [2]
    assert result.offsets() == {TopicPartition("t", 0): 10}
    assert all(w.pixels is None for w in result.works)  # released once embedded


def test_gpu_decode_hook_feeds_device_rows_to_the_engine() -> None:
    """The decode stage's device path, run with the same decoder on the CPU: one batch decode,
    undecodable frames to the DLQ with their reason, rows stacked as a tensor for the engine."""
    import torch

    from harclip.engines.gpu_decode import TorchDecoder

    decoder = TorchDecoder(SIZE, max_pixels=10**7, device="cpu")
    records = [rec(0, jpeg()), rec(1, b"\x00" * 50), rec(2, jpeg(40, 80))]
    works = decode_records_on_device(records, LIVE, decoder)
    assert [w.error is None for w in works] == [True, False, True]
    assert works[1].error is not None and works[1].error.startswith("undecodable:")
    assert isinstance(works[0].pixels, torch.Tensor) and works[0].pixels.shape == (SIZE, SIZE, 3)
    in_use = HeadInUse(head(), ModelRef(name="m", version="1", head_version=1, engine="fake"))
    result = run_batch(Batch(items=works), FakeEngine(), in_use, top_k=1)
    assert [p.prediction.seq for p in result.predicted] == [0, 2]
    assert result.predicted[0].prediction.model.engine == "fake"


def test_engine_with_wrong_row_count_fails_the_whole_batch() -> None:
    works = decode_records([rec(i, jpeg()) for i in range(3)], LIVE, SIZE, max_pixels=10**7)
    in_use = HeadInUse(head(), ModelRef(name="m", version="1", head_version=1))
    result = run_batch(Batch(items=works), FakeEngine(rows_off=-1), in_use, top_k=1)
    assert not result.predicted and len(result.failed) == 3
    assert all(w.error and w.error.startswith("inference:") for w in result.failed)


def test_health_routes() -> None:
    missing: list[str] = ["starting"]
    server = HealthServer("127.0.0.1", 0, CollectorRegistry(), lambda: missing)
    assert server.route("/health")[0] == 200
    status, _, body = server.route("/ready")
    assert status == 503 and b"starting" in body
    missing.clear()
    assert server.route("/ready")[0] == 200
    assert server.route("/metrics")[0] == 200
    assert server.route("/nope")[0] == 404


async def test_a_taken_health_port_is_a_one_line_error() -> None:
    first = HealthServer("127.0.0.1", 0, CollectorRegistry(), list)
    await first.start()
    try:
        second = HealthServer("127.0.0.1", first.port, CollectorRegistry(), list)
        with pytest.raises(ConfigError, match=f"port {first.port} .* --metrics-port"):
            await second.start()
    finally:
        await first.stop()
