"""A Prediction is made into JSON once per frame (`Predicted.json()`), and
`store.write_predictions` checks the `docs` it is given; that the Kafka and Redis sinks write
those same bytes is tests/integration/consumers/test_serialised_once.py."""

from __future__ import annotations

import asyncio
from unittest import mock

import numpy as np
import pytest
from aiokafka.structs import TopicPartition

from consumers.work import BULK, Predicted, Work
from harclip.config import RedisSettings
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


def test_write_predictions_checks_docs_match() -> None:
    preds = [_predicted(i).prediction for i in range(2)]
    with pytest.raises(ValueError, match="1 docs for 2 predictions"):
        asyncio.run(store.write_predictions(object(), RedisSettings(), preds, docs=[b"{}"]))  # type: ignore[arg-type]
