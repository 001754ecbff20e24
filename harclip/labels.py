"""The 15 HAR classes and the prompt templates used to build zero-shot heads."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

HAR_CLASSES: tuple[str, ...] = (
    "calling",
    "clapping",
    "cycling",
    "dancing",
    "drinking",
    "eating",
    "fighting",
    "hugging",
    "laughing",
    "listening_to_music",
    "running",
    "sitting",
    "sleeping",
    "texting",
    "using_laptop",
)

PROMPT_TEMPLATES: tuple[str, ...] = (
    "a photo of a person {}.",
    "a photo of someone {}.",
    "a picture of a person {}.",
    "an image of people {}.",
    "a cropped photo of a person {}.",
    "a low resolution photo of a person {}.",
    "a video frame of a person {}.",
)

# Class names read as verbs in prompts ("a photo of a person using a laptop").
_PHRASES: Mapping[str, str] = {
    "calling": "making a phone call",
    "clapping": "clapping hands",
    "cycling": "riding a bike",
    "dancing": "dancing",
    "drinking": "drinking",
    "eating": "eating",
    "fighting": "fighting",
    "hugging": "hugging someone",
    "laughing": "laughing",
    "listening_to_music": "listening to music with headphones",
    "running": "running",
    "sitting": "sitting",
    "sleeping": "sleeping",
    "texting": "texting on a phone",
    "using_laptop": "using a laptop",
}


def phrase(label: str) -> str:
    """The words used for `label` inside a prompt ("using_laptop" -> "using a laptop")."""
    return _PHRASES.get(label, label.replace("_", " "))


def prompts_for(label: str, templates: Sequence[str] = PROMPT_TEMPLATES) -> list[str]:
    """Every prompt of `label`, one per template."""
    return [t.format(phrase(label)) for t in templates]


def default_label_set() -> dict[str, list[str]]:
    """The 15 HAR classes, each with its prompt ensemble, in class order."""
    return {label: prompts_for(label) for label in HAR_CLASSES}
