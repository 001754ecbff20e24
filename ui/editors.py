"""The text formats of the Labels & rules editors: label lines (`label: prompt | prompt`) and
rules YAML, read into what `set_labels` and `set_rules` take. Pure."""

from __future__ import annotations

from typing import Any

import yaml

from harclip import yamlsafe
from harclip.wire import LabelSet


def parse_label_lines(raw: str) -> tuple[list[str], dict[str, list[str]]]:
    """`name` or `name: prompt | prompt ...` per line -> (names, prompts); blank lines skipped."""
    names: list[str] = []
    prompts: dict[str, list[str]] = {}
    for line in raw.splitlines():
        name, sep, rest = line.partition(":")
        name = name.strip()
        if not name:
            continue
        names.append(name)
        given = [p.strip() for p in rest.split("|") if p.strip()] if sep else []
        if given:
            prompts[name] = given
    return names, prompts


def label_lines(ls: LabelSet) -> str:
    return "\n".join(
        f"{n}: {' | '.join(ls.prompts[n])}" if ls.prompts.get(n) else n for n in ls.labels
    )


def parse_rules(raw: str) -> list[dict[str, Any]]:
    """YAML: a list of rules, or {"rules": [...]} as in the events app's file; ValueError."""
    try:
        doc = yamlsafe.load(raw)
    except yaml.YAMLError as e:
        raise ValueError(f"not YAML: {e}") from None
    if isinstance(doc, dict) and "rules" in doc:
        doc = doc["rules"]
    if doc is None:
        return []
    if not isinstance(doc, list) or not all(isinstance(r, dict) for r in doc):
        raise ValueError("expected a list of rules (mappings), or {rules: [...]}")
    return doc
