"""HTTP request and response bodies of the API."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from pydantic import ConfigDict, Field, model_validator

from harclip.messages import Event, LabelScore, ModelRef, Prediction
from harclip.wire.base import _MODEL_EXAMPLE, WireModel, _Request

# ----------------------------------------------------------------------------- predict


class PredictRequest(_Request):
    """One image, as base64 (`image`) or as an http(s) URL (`image_url`); exactly one of them."""

    image: str | None = Field(
        None,
        description="base64 of the encoded image (JPEG, PNG, WebP, BMP, GIF); a "
        "`data:image/...;base64,` prefix is accepted",
        max_length=20_000_000,
        examples=["/9j/4AAQSkZJRgABAQAAAQABAAD..."],
    )
    image_url: str | None = Field(
        None,
        description="public http(s) URL of an image (private addresses are refused)",
        max_length=2048,
        examples=["https://example.com/person-on-a-bike.jpg"],
    )
    top_k: int | None = Field(
        None, ge=1, le=100, description="labels to return (default: HARCLIP_MODEL__TOP_K)"
    )

    model_config = ConfigDict(
        frozen=True,
        allow_inf_nan=False,
        extra="forbid",
        json_schema_extra={"examples": [{"image_url": "https://example.com/bike.jpg", "top_k": 3}]},
    )

    @model_validator(mode="after")
    def _one_source(self) -> PredictRequest:
        if (self.image is None) == (self.image_url is None):
            raise ValueError("give exactly one of 'image' (base64) or 'image_url'")
        return self


class PredictLatency(WireModel):
    decode: float = Field(description="decode + resize, ms")
    queue: float = Field(description="waiting for a batch, ms")
    infer: float = Field(description="engine + head for the batch, ms")
    total: float = Field(description="request received -> result, ms")


class PredictResponse(WireModel):
    """The prediction for one image: top label, its score and the top-k list (best first)."""

    label: str = Field(examples=["cycling"])
    score: float = Field(description="softmax probability, 0-1", examples=[0.91])
    predictions: list[LabelScore]
    model: ModelRef
    latency_ms: PredictLatency
    filename: str | None = Field(None, description="the uploaded file's name (multipart only)")

    model_config = ConfigDict(
        frozen=True,
        allow_inf_nan=False,
        extra="ignore",
        json_schema_extra={
            "examples": [
                {
                    "label": "cycling",
                    "score": 0.91,
                    "predictions": [
                        {"label": "cycling", "score": 0.91},
                        {"label": "running", "score": 0.04},
                    ],
                    "model": _MODEL_EXAMPLE,
                    "latency_ms": {"decode": 2.1, "queue": 1.0, "infer": 9.5, "total": 13.0},
                    "filename": None,
                }
            ]
        },
    )


class PredictManyResponse(WireModel):
    """One result per uploaded file, in upload order."""

    results: list[PredictResponse]


# ----------------------------------------------------------------------------- service


class ServiceInfo(WireModel):
    service: str = Field(examples=["harclip-api"])
    version: str = Field(examples=["0.1.0"])
    model: ModelRef
    base_model: str = Field(examples=["openai/clip-vit-base-patch32"])
    engine: str = Field(examples=["onnx"])
    image_size: int = Field(examples=[224])
    labels: list[str] = Field(
        description="the label set in use; empty for a caller who may not read it (auth on and "
        "no valid key)",
        examples=[["calling", "cycling", "running"]],
    )
    auth: bool = Field(description="whether API keys are required")
    random_weights: bool = Field(
        default=False,
        description="the served encoder has random weights (`harclip init-model`, as in `make "
        "demo` by default): its labels and scores mean nothing",
    )


class Health(WireModel):
    status: str = Field(examples=["ok"])


class Readiness(WireModel):
    ready: bool
    checks: dict[str, str] = Field(
        examples=[{"model": "ok", "redis": "ok", "elasticsearch": "ok", "kafka": "ok"}]
    )


# ----------------------------------------------------------------------------- reads


class StreamInfo(WireModel):
    stream_id: str = Field(examples=["cam-1"])
    last_seen: int = Field(description="last prediction, ms since epoch", examples=[1764223200000])


class StreamList(WireModel):
    """Streams, most recently seen first."""

    streams: list[StreamInfo]


class PredictionPage(WireModel):
    """A page of predictions, newest first; pass `next` as `cursor` for the following page."""

    items: list[Prediction]
    next: str | None = Field(None, description="cursor of the next page, or null at the end")


class EventPage(WireModel):
    """A page of events, newest first; pass `next` as `cursor` for the following page."""

    items: list[Event]
    next: str | None = Field(None, description="cursor of the next page, or null at the end")


class RulesDoc(WireModel):
    """The alert rules of the events app in force on `harclip.control` (the newest valid record;
    none published: the app's rules file applies, which the API does not see)."""

    rules: list[dict[str, Any]] = Field(
        examples=[[{"name": "fight", "label": "fighting", "min_score": 0.6, "for_seconds": 2,
                    "streams": ["*"], "severity": "critical", "cooldown_seconds": 60}]]
    )  # fmt: skip
    updated_at: int | None = Field(None, description="when they were published, ms since epoch")
    published: bool = Field(description="false: nothing on harclip.control yet")


class SearchHit(WireModel):
    """A keyframe whose embedding is near the query's, and the frames it stands for (itself and
    the following frames of its stream that were close enough to keep no embedding of their own).
    """

    similarity: float = Field(description="cosine of the query and keyframe embeddings, -1..1")
    prediction: Prediction = Field(description="the keyframe's prediction")
    frames: int = Field(1, description="frames this keyframe stands for, itself included")
    first_at: int = Field(0, description="captured_at of the first of them, ms since epoch")
    last_at: int = Field(0, description="captured_at of the last of them, ms since epoch")
    thumbnail: str | None = Field(
        None, description="the API path of the keyframe's thumbnail (a ~160 px JPEG, "
        "`GET /frames/{frame_id}/thumbnail`, same auth); null when it has none",
        examples=["/frames/0192b1c4d5e6f7a8b9c0d1e2f3a4b5c6/thumbnail"],
    )  # fmt: skip


def frame_thumbnail_path(frame_id: str) -> str:
    """The API path that serves a keyframe's thumbnail."""
    return f"/frames/{quote(frame_id, safe='')}/thumbnail"


class SearchResponse(WireModel):
    """Best matches first, from the embedding space of the API's model."""

    query: str = Field(examples=["someone riding a bike"])
    space: str = Field(
        "", description="the embedding space searched (model, version, size): vectors of other "
        "models are not comparable, so their frames are not searched",
        examples=["clip-vit-b-32-har-v1-512d"],
    )  # fmt: skip
    hits: list[SearchHit]


# ----------------------------------------------------------------------------- labels


class LabelSet(WireModel):
    """The label set (head) in use."""

    version: int = Field(examples=[3])
    kind: str = Field(examples=["zero-shot"])
    labels: list[str] = Field(examples=[["cycling", "running"]])
    prompts: dict[str, list[str]] = Field(
        examples=[{"cycling": ["a photo of a person riding a bike."]}]
    )


class LabelSetRequest(_Request):
    """New labels: names, with optional prompts per name (a name without prompts gets the
    default prompt ensemble, e.g. "a photo of a person riding a bike.")."""

    labels: list[str] = Field(min_length=1, max_length=200, examples=[["cycling", "skateboarding"]])
    prompts: dict[str, list[str]] = Field(
        default_factory=dict, examples=[{"skateboarding": ["a photo of a person on a skateboard."]}]
    )

    model_config = ConfigDict(
        frozen=True,
        allow_inf_nan=False,
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "labels": ["cycling", "skateboarding"],
                    "prompts": {"skateboarding": ["a photo of a person on a skateboard."]},
                }
            ]
        },
    )


class RulesRequest(_Request):
    """New alert rules, the YAML file's shape as JSON: {"rules": [{name, label | labels, ...}]};
    checked as the events app checks a file (errors name the rule and the field)."""

    rules: list[dict[str, Any]] = Field(max_length=500)
