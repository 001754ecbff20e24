"""Typed errors shared by every harclip component.

One root (`HarclipError`) so entry points can turn any expected failure into a clear one-line
message; `retriable` tells the single decision point whether to retry or to dead-letter. The kind
of error says what it means: `Unavailable` (and its `SinkUnavailable`, `ReadUnavailable`) is
transient, `SinkRefused` / `ReadRefused` are for good.
"""

from __future__ import annotations

from collections.abc import Mapping


class HarclipError(Exception):
    """Root of every error harclip raises on purpose; its message is meant for a user."""

    retriable: bool = False


class ConfigError(HarclipError):
    """A setting is missing or invalid; the message says which and how to fix it."""


class DecodeError(HarclipError):
    """Input bytes are not a usable image (corrupt, truncated, empty, too large, not an image)."""


class MessageError(HarclipError):
    """A Kafka message or JSON document does not follow its schema."""


class ModelError(HarclipError):
    """A model or bundle cannot be loaded, exported or used."""


class EngineUnavailable(ModelError):
    """The requested engine needs a runtime (CUDA, TensorRT, torch) that is not installed here."""


class Unavailable(HarclipError):
    """A service (Kafka, Redis, Elasticsearch) did not answer: connection refused, timeout,
    overload. Transient: the caller retries or answers 503."""

    retriable = True


class Overloaded(HarclipError):
    """More work than a bounded queue takes: refused now, to be retried later (the API answers
    503 with Retry-After)."""

    retriable = True


class SinkUnavailable(Unavailable):
    """A sink did not acknowledge a write; the batch is retried (never dead-lettered)."""


class ReadUnavailable(Unavailable):
    """A read (latest, history, search, ...) could not be answered now; callers answer 503."""


class SinkRefused(HarclipError):
    """A sink refused a write for good (a mapping conflict, a value it rejects): retrying cannot
    help. `frames` maps frame_id -> the sink's reason; empty when the whole write was refused."""

    def __init__(self, message: str, frames: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.frames = dict(frames or {})


class ReadRefused(HarclipError):
    """A service refused a read for good (an invalid query, a missing index)."""


class ServiceError(HarclipError):
    """A local service (Kafka, Redis, Elasticsearch) could not be fetched, started or stopped."""
