"""Change a bundle's label set without torch: read and validate a label set (names + prompts),
encode the prompts with the bundle's ONNX text encoder, and save the new head with its version
bumped. The `harclip labels` command and the API's label endpoint both call `relabel`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harclip.errors import MessageError
from harclip.labels import prompts_for

if TYPE_CHECKING:
    from harclip.model.bundle import Bundle
    from harclip.model.head import Head

LabelSet = dict[str, list[str]]

MAX_LABELS = 1000
MAX_NAME_CHARS = 100
MAX_PROMPTS = 64
MAX_PROMPT_CHARS = 300
MAX_TOTAL_PROMPTS = 2048  # text encodings one label set may ask for


def relabel(bundle: Bundle, label_set: Mapping[str, Sequence[str]], *, save: bool = True) -> Head:
    """A zero-shot head for `label_set` ({name: [prompt, ...]}), version = current + 1.

    Keeps the current head's logit scale; saves it into the bundle unless `save` is False.
    `MessageError` when the label set is invalid.
    """
    from harclip.model.head import next_version
    from harclip.model.text import build_head

    checked = validate_label_set(label_set)
    current = bundle.load_head()
    head = build_head(
        bundle.text_encoder(),
        checked,
        logit_scale=current.logit_scale,
        version=next_version(current.version),
    )
    if save:
        bundle.save_head(head)
    return head


def label_set_from_names(names: Iterable[str]) -> LabelSet:
    """{name: the default prompt ensemble of name} for each name ("using_laptop" → "... using a
    laptop"); blank names are skipped."""
    return validate_label_set({n.strip(): prompts_for(n.strip()) for n in names if n.strip()})


def load_label_set(path: Path) -> LabelSet:
    """A label set from a JSON or YAML file: {name: [prompts]}, {"labels": {...}} or [names]
    (names get the default prompts); `MessageError` naming the problem."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise MessageError(f"cannot read label file {path}: {e}") from None
    doc: object
    if path.suffix.lower() in (".yaml", ".yml"):
        import yaml

        from harclip import yamlsafe

        try:
            doc = yamlsafe.load(text)
        except yaml.YAMLError as e:
            raise MessageError(f"{path}: invalid YAML: {e}") from None
    else:
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as e:
            raise MessageError(f"{path}: invalid JSON: {e}") from None
    try:
        return parse_label_set(doc)
    except MessageError as e:
        raise MessageError(f"{path}: {e}") from None


def parse_label_set(doc: object) -> LabelSet:
    """A label set from a decoded document: [names] (default prompts), {name: [prompts] | None},
    {"labels": {...}} or a labels.json document ({"labels": [names], "prompts": {...}}); names
    without prompts (null or []) get the default ensemble. `MessageError` naming the problem."""
    if (
        isinstance(doc, dict)
        and "labels" in doc
        and set(doc) <= {"labels", "prompts", "version", "kind", "created_at"}
    ):
        prompts = doc.get("prompts") or {}
        if not isinstance(prompts, dict):
            raise MessageError("prompts must be an object {label: [prompt, ...]}")
        labels = doc["labels"]
        doc = {n: prompts.get(n) for n in labels} if isinstance(labels, list) else labels
    if isinstance(doc, list):
        if not all(isinstance(n, str) for n in doc):
            raise MessageError("a list label set must hold label names (strings)")
        return label_set_from_names(doc)
    if not isinstance(doc, dict):
        raise MessageError(
            'expected {name: [prompt, ...]}, {"labels": ...} or a list of label names'
        )
    filled = {
        k: (prompts_for(k.strip()) if v in (None, []) and isinstance(k, str) else v)
        for k, v in doc.items()
    }
    return validate_label_set(filled)


def validate_label_set(label_set: Mapping[Any, Any]) -> LabelSet:
    """The label set as {str: [str]} after checks (non-empty, unique, sizes, printable text, at
    most `MAX_TOTAL_PROMPTS` prompts in all); `MessageError`."""
    if not label_set:
        raise MessageError("label set is empty: give at least one label")
    if len(label_set) > MAX_LABELS:
        raise MessageError(f"label set has {len(label_set)} labels, at most {MAX_LABELS}")
    total = sum(len(p) if isinstance(p, list) else 1 for p in label_set.values())
    if total > MAX_TOTAL_PROMPTS:
        raise MessageError(
            f"label set has {total} prompts in all, at most {MAX_TOTAL_PROMPTS} (each prompt is "
            "one text encoding)"
        )
    out: LabelSet = {}
    for name, prompts in label_set.items():
        if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME_CHARS:
            raise MessageError(f"label {name!r}: names are 1-{MAX_NAME_CHARS} characters")
        if not name.isprintable():
            raise MessageError(
                f"label {name!r}: control characters (tabs, newlines, escapes) are not allowed"
            )
        if isinstance(prompts, str):
            prompts = [prompts]
        if not isinstance(prompts, list) or not prompts:
            raise MessageError(f"label {name!r}: give a non-empty list of prompts")
        if len(prompts) > MAX_PROMPTS:
            raise MessageError(f"label {name!r}: {len(prompts)} prompts, at most {MAX_PROMPTS}")
        for p in prompts:
            if not isinstance(p, str) or not p.strip() or len(p) > MAX_PROMPT_CHARS:
                raise MessageError(
                    f"label {name!r}: prompts are 1-{MAX_PROMPT_CHARS} characters, got {p!r}"
                )
            if not p.isprintable():
                raise MessageError(f"label {name!r}: prompt {p!r} holds a control character")
        key = name.strip()
        if key in out:
            raise MessageError(f"label {key!r} appears twice")
        out[key] = [p.strip() for p in prompts]
    return out
