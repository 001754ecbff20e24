"""The worker's batch step fills Prediction.watches with the scores of each frame's stream."""

from __future__ import annotations

import numpy as np
from aiokafka.structs import TopicPartition

from consumers.inference import run_batch
from consumers.work import LIVE, Work
from harclip.batching import Batch
from harclip.control import HeadInUse
from harclip.messages import Frame, ModelRef, new_frame_id, now_ms
from harclip.model.head import Head
from harclip.watches import Watch, WatchSet, WatchSpec
from harclip.watches.scoring import WatchScorer


class _Engine:
    name, embed_dim, image_size = "fake", 4, 8

    def embed(self, images: np.ndarray) -> np.ndarray:
        return np.tile(np.eye(4, dtype=np.float32)[:1], (images.shape[0], 1))

    def close(self) -> None:
        pass


def _work(i: int, stream: str) -> Work:
    f = Frame(new_frame_id(), stream, i, now_ms(), b"x")
    w = Work(TopicPartition("t", 0), i, None, None, [], LIVE, 0.0, frame=f)
    w.pixels = np.zeros((8, 8, 3), np.uint8)
    return w


def test_predictions_carry_the_watches_of_their_stream() -> None:
    x, y = [1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0]
    watch = Watch(spec=WatchSpec(name="door", prompts=["p"], streams=["door-*"]), version=1,
                  positive=x, negatives=[y])  # fmt: skip
    scorer = WatchScorer(WatchSet(version=1, embed_dim=4, watches=[watch]), 100.0)
    head = Head(("a", "b"), np.eye(4, 2, dtype=np.float32), np.zeros(2, np.float32), 100.0, 1)
    in_use = HeadInUse(head, ModelRef(name="m", version="1", head_version=1))
    batch = Batch(items=[_work(0, "door-1"), _work(1, "yard")], stale=[])
    result = run_batch(batch, _Engine(), in_use, 2, watches=scorer)
    preds = [p.prediction for p in result.predicted]
    assert set(preds[0].watches) == {"door"} and preds[0].watches["door"] > 0.99
    assert preds[1].watches == {} and "watches" not in preds[1].to_json().decode()
    result = run_batch(Batch(items=[_work(2, "door-1")], stale=[]), _Engine(), in_use, 2)
    assert result.predicted[0].prediction.watches == {}
