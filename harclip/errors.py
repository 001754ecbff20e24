"""Typed errors shared by every harclip component.

One root (`HarclipError`) so entry points can turn any expected failure into a clear one-line
message; `retriable` tells the single decision point whether to retry or to dead-letter.
"""

from __future__ import annotations


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


class SinkUnavailable(HarclipError):
    """A sink (Kafka, Redis, Elasticsearch) did not acknowledge; the batch is retried."""

    retriable = True


class ServiceError(HarclipError):
    """A local service (Kafka, Redis, Elasticsearch) could not be fetched, started or stopped."""
