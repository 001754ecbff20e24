"""Errors of the training commands; each message is one line meant for a user."""

from __future__ import annotations

from harclip.errors import HarclipError


class DataError(HarclipError):
    """A data source, split or image set cannot be used (missing class folder, one class...)."""


class TrainingError(HarclipError):
    """A run cannot start or continue (checkpoint of another config, bad batch split...)."""


class TrackingError(HarclipError):
    """MLflow / W&B / the model registry refused or could not be reached."""


class HubError(HarclipError):
    """The Hugging Face hub cannot be reached, refused the token, or refused the upload."""
