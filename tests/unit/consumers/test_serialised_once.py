"""A Prediction is made into JSON once per frame: the Kafka and Redis sinks write the same
bytes (`Predicted.json()`), and `store.write_predictions` takes them as `docs`."""

from __future__ import annotations

import asyncio
from typing import Any
from unittest import mock

import numpy as np
import pytest
from aiokafka.structs import TopicPartition

from consumers.sinks import KafkaSink, RedisSink
from consumers.work import BULK, BatchResult, Predicted, Work
from harclip.config import KafkaSettings, RedisSettings
from harclip.io import store
from harclip.messages import Prediction
from tests.support.api import prediction


def _predicted(seq: int) -> Predicted:
    w = Work(TopicPartition("t", 0), seq, None, b"", [], BULK, 0.0)
    return Predicted(w, prediction("cam-1", seq, "running", 0.9), np.zeros(4, np.float32))


def test_json_is_made_once_and_is_the_messages() -> None:
    p = _predicted(1)
    with mock.patch.object(Prediction, "to_json", autospec=True, side_effect=Prediction.to_json
                           ) as to_json:  # fmt: skip
        first, again = p.json(), p.json()
    assert first is again
    assert to_json.call_count == 1
    assert Prediction.from_json(first) == p.prediction


def test_kafka_and_redis_write_the_same_bytes() -> None:
    preds = [_predicted(i) for i in range(3)]
    result = BatchResult(works=[p.work for p in preds], predicted=preds)
    sent: list[bytes] = []

    kafka = KafkaSink(KafkaSettings())

    async def send_all(records: list[Any]) -> list[None]:
        sent.extend(value for topic, value, _, _ in records if topic.endswith("predictions"))
        return [None] * len(records)

    kafka._send_all = send_all  # type: ignore[method-assign]
    redis = RedisSink(RedisSettings())
    redis._redis = object()  # never used: the write is the function under watch below
    seen: dict[str, Any] = {}

    async def write(r: Any, s: Any, ps: Any, frames: Any, *, docs: Any = None) -> None:
        seen.update(preds=ps, docs=docs)

    spy = mock.patch.object(Prediction, "to_json", autospec=True, side_effect=Prediction.to_json)
    with spy as to_json, mock.patch.object(store, "write_predictions", write):
        for sink in (kafka, redis):
            sink.add(result)
        asyncio.run(kafka.flush())
        asyncio.run(redis.flush())
    assert to_json.call_count == 3  # once per frame, not once per sink
    assert seen["docs"] == sent == [p.json() for p in preds]
    assert all(a is b for a, b in zip(seen["docs"], sent, strict=True))


def test_write_predictions_checks_docs_match() -> None:
    preds = [_predicted(i).prediction for i in range(2)]
    with pytest.raises(ValueError, match="1 docs for 2 predictions"):
        asyncio.run(store.write_predictions(object(), RedisSettings(), preds, docs=[b"{}"]))  # type: ignore[arg-type]
