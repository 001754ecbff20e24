"""Request and response bodies of the REST API, with the examples the OpenAPI page shows."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from harclip.messages import ModelRef, Prediction

_MODEL_EXAMPLE: dict[str, Any] = {"name": "clip-vit-b-32-har", "version": "1", "head_version": 3}


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorDetail(_Body):
    code: str = Field(examples=["invalid_image"])
    message: str = Field(examples=["image: not a JPEG, PNG, WebP, BMP or GIF image"])


class ErrorResponse(_Body):
    """Every error: a stable machine `code` and a message for people."""

    error: ErrorDetail


class PredictRequest(_Body):
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
        extra="forbid",
        json_schema_extra={"examples": [{"image_url": "https://example.com/bike.jpg", "top_k": 3}]},
    )

    @model_validator(mode="after")
    def _one_source(self) -> PredictRequest:
        if (self.image is None) == (self.image_url is None):
            raise ValueError("give exactly one of 'image' (base64) or 'image_url'")
        return self


class LabelScore(_Body):
    label: str = Field(examples=["cycling"])
    class_name: str = Field(
        description="same as label (name kept from the first API)", examples=["cycling"]
    )
    score: float = Field(description="softmax probability, 0-1", examples=[0.91])


class PredictLatency(_Body):
    decode: float = Field(description="decode + resize, ms")
    queue: float = Field(description="waiting for a batch, ms")
    infer: float = Field(description="engine + head for the batch, ms")
    total: float = Field(description="request received -> result, ms")


class PredictResponse(_Body):
    """The prediction for one image: top label, its score and the top-k list."""

    label: str = Field(examples=["cycling"])
    score: float = Field(examples=[0.91])
    predictions: list[LabelScore]
    model: ModelRef
    latency_ms: PredictLatency
    filename: str | None = Field(None, description="the uploaded file's name (multipart only)")

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "label": "cycling",
                    "score": 0.91,
                    "predictions": [
                        {"label": "cycling", "class_name": "cycling", "score": 0.91},
                        {"label": "running", "class_name": "running", "score": 0.04},
                    ],
                    "model": _MODEL_EXAMPLE,
                    "latency_ms": {"decode": 2.1, "queue": 1.0, "infer": 9.5, "total": 13.0},
                    "filename": None,
                }
            ]
        },
    )


class PredictManyResponse(_Body):
    """One result per uploaded file, in upload order."""

    results: list[PredictResponse]


class ServiceInfo(_Body):
    service: str = Field(examples=["harclip-api"])
    version: str = Field(examples=["0.1.0"])
    model: ModelRef
    base_model: str = Field(examples=["openai/clip-vit-base-patch32"])
    engine: str = Field(examples=["onnx"])
    image_size: int = Field(examples=[224])
    labels: list[str] = Field(examples=[["calling", "cycling", "running"]])
    auth: bool = Field(description="whether API keys are required")


class Health(_Body):
    status: str = Field(examples=["ok"])


class Readiness(_Body):
    ready: bool
    checks: dict[str, str] = Field(
        examples=[{"model": "ok", "redis": "ok", "elasticsearch": "ok", "kafka": "ok"}]
    )


class StreamInfo(_Body):
    stream_id: str = Field(examples=["cam-1"])
    last_seen: int = Field(description="last prediction, ms since epoch", examples=[1764223200000])


class StreamList(_Body):
    streams: list[StreamInfo]


class PredictionPage(_Body):
    """A page of predictions, newest first; pass `next` as `cursor` for the following page."""

    items: list[Prediction]
    next: str | None = Field(None, description="cursor of the next page, or null at the end")


class SearchHit(_Body):
    similarity: float = Field(description="kNN similarity of the text and the frame, 0-1")
    prediction: Prediction


class SearchResponse(_Body):
    query: str = Field(examples=["someone riding a bike"])
    hits: list[SearchHit]


class LabelSetResponse(_Body):
    version: int = Field(examples=[3])
    kind: str = Field(examples=["zero-shot"])
    labels: list[str] = Field(examples=[["cycling", "running"]])
    prompts: dict[str, list[str]] = Field(
        examples=[{"cycling": ["a photo of a person riding a bike."]}]
    )


class LabelSetRequest(_Body):
    """New labels: names, with optional prompts per name (a name without prompts gets the
    default prompt ensemble, e.g. "a photo of a person riding a bike.")."""

    labels: list[str] = Field(min_length=1, max_length=200, examples=[["cycling", "skateboarding"]])
    prompts: dict[str, list[str]] = Field(
        default_factory=dict, examples=[{"skateboarding": ["a photo of a person on a skateboard."]}]
    )

    model_config = ConfigDict(
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


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` entries for the error statuses a route may answer."""
    text = {
        400: "bad request (e.g. refused URL)",
        401: "missing or unknown API key",
        403: "the key's role is too weak",
        404: "not found",
        413: "body or image too large",
        415: "not a supported image",
        422: "invalid input (schema, undecodable image, pixel limit)",
        429: "rate limit exceeded",
        503: "a dependency (Redis, Elasticsearch, Kafka) is unavailable",
    }
    return {s: {"model": ErrorResponse, "description": text.get(s, "error")} for s in statuses}
