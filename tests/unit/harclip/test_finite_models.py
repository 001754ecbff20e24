"""Every pydantic model of the product (settings, messages, wire types, watches, rules, training
config) refuses NaN and infinities: a `NaN` in a JSON body, a Kafka message or a HARCLIP_*
variable is a validation error naming the field, never a number that poisons a threshold, a
histogram or a sort. New models inherit it from their bases; this test finds any that do not."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterator

import pytest
from pydantic import BaseModel, ValidationError

PACKAGES = ("harclip", "api", "consumers", "producers", "stream", "training.config")
AS_IS = {"harclip.client._requests"}  # bodies sent as they are: the server judges them


def _import_all() -> None:
    for name in PACKAGES:
        module = importlib.import_module(name)
        for info in pkgutil.walk_packages(getattr(module, "__path__", []), f"{name}."):
            if not info.name.endswith("__main__"):
                importlib.import_module(info.name)


def _models(cls: type[BaseModel]) -> Iterator[type[BaseModel]]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _models(sub)


def test_every_model_refuses_nan_and_infinity() -> None:
    _import_all()
    ours = {
        f"{m.__module__}.{m.__qualname__}"
        for m in _models(BaseModel)
        if m.__module__.split(".")[0] in {p.split(".")[0] for p in PACKAGES}
        and m.__module__ not in AS_IS
        and m.model_config.get("allow_inf_nan", True) is not False
    }
    assert ours == set()


@pytest.mark.parametrize("raw", ["NaN", "Infinity", "-Infinity"])
def test_a_non_finite_score_in_a_message_is_refused(raw: str) -> None:
    from harclip.messages import Prediction

    doc = (
        '{"schema": "harclip.prediction/1", "frame_id": "f", "stream_id": "s", "seq": 0,'
        ' "captured_at": 1, "inferred_at": 2, "label": "a", "score": SCORE,'
        ' "top_k": [{"label": "a", "score": 0.5}], "model": {"name": "m", "version": "1",'
        ' "head_version": 1}, "latency_ms": {"queue": 1, "infer": 1, "total": 2}}'
    ).replace("SCORE", raw)
    assert Prediction.model_validate_json(doc.replace(raw, "0.5")).score == 0.5
    with pytest.raises(ValidationError, match="score\n  Input should be a finite number"):
        Prediction.model_validate_json(doc)
