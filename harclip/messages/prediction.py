"""Prediction: what a worker (or the API) says about one frame; JSON on Kafka, in Redis and in
Elasticsearch (`harclip.prediction/1`)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from harclip.messages.base import Message, Part

PREDICTION_SCHEMA = "harclip.prediction/1"


class LabelScore(Part):
    label: str
    score: float


class ModelRef(Part):
    name: str
    version: str
    head_version: int
    engine: str | None = Field(
        None,
        description="the engine that embedded the frame, e.g. onnx-int8, onnx/cuda, "
        "torch/fp16/cuda, tensorrt/fp16 (None in documents written before it was recorded)",
    )
    adapter: int | None = Field(
        None, description="version of the feedback cache adapter applied after the head, if any"
    )

    OMIT_EMPTY: ClassVar[frozenset[str]] = frozenset({"adapter"})


class Latency(Part):
    queue: float = Field(description="captured_at -> batch start, ms")
    infer: float = Field(description="engine + head for the batch, ms")
    total: float = Field(description="captured_at -> prediction built, ms")


class Prediction(Message):
    """What a worker (or the API) says about one frame."""

    SCHEMA: ClassVar[str] = PREDICTION_SCHEMA
    schema_: str = Field(PREDICTION_SCHEMA, alias="schema")
    frame_id: str
    stream_id: str
    seq: int
    captured_at: int
    inferred_at: int
    label: str
    score: float
    top_k: list[LabelScore]
    model: ModelRef
    latency_ms: Latency
    watches: dict[str, float] = Field(
        default_factory=dict,
        description="score of each watch of this stream (harclip.watches), those under "
        "SCORE_FLOOR left out; absent when none",
    )

    OMIT_EMPTY: ClassVar[frozenset[str]] = frozenset({"watches"})
