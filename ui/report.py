"""The training report the Performance page shows (`HARCLIP_UI__REPORT`): a report folder that
`python -m training` wrote (`metrics.json`: accuracy, per-class figures, confusion matrix), its
`metrics.json` itself, or a bundle folder (`manifest.json` keeps the report's headline only)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True, slots=True)
class Report:
    source: Path
    title: str
    headline: dict[str, float]  # accuracy, macro_f1, top5_accuracy, n (those present)
    classes: list[str] = field(default_factory=list)
    confusion: list[list[int]] = field(default_factory=list)  # rows true, columns predicted
    per_class: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def recall(self) -> dict[str, float]:
        """Per-class accuracy (recall)."""
        return {k: float(v.get("recall", 0.0)) for k, v in self.per_class.items()}


_HEADLINE = ("accuracy", "macro_f1", "top5_accuracy", "n")


def _headline(doc: dict[str, Any]) -> dict[str, float]:
    return {k: float(doc[k]) for k in _HEADLINE if isinstance(doc.get(k), int | float)}


def load(path: Path) -> Report:
    """The report at `path`; ValueError saying what is missing or unreadable."""
    p = path / "metrics.json" if (path / "metrics.json").is_file() else path
    if p.is_dir() and (p / "manifest.json").is_file():
        return _from_manifest(p / "manifest.json")
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ValueError(f"no readable report at {path}: {e}") from None
    if not isinstance(doc, dict):
        raise ValueError(f"{p}: not a report (expected a JSON object)")
    if "metrics" in doc and "confusion" not in doc:  # a manifest.json given directly
        return _from_manifest(p)
    return Report(
        source=p,
        title=str(doc.get("title", "Training report")),
        headline=_headline(doc),
        classes=[str(c) for c in doc.get("classes", [])],
        confusion=[[int(n) for n in row] for row in doc.get("confusion", [])],
        per_class={str(k): dict(v) for k, v in doc.get("per_class", {}).items()},
    )


def _from_manifest(p: Path) -> Report:
    try:
        metrics = json.loads(p.read_text(encoding="utf-8")).get("metrics") or {}
    except (OSError, ValueError) as e:
        raise ValueError(f"{p}: {e}") from None
    ev: dict[str, Any] = metrics["eval"] if isinstance(metrics.get("eval"), dict) else metrics
    if not _headline(ev):
        raise ValueError(f"{p}: this bundle carries no evaluation report")
    return Report(source=p, title="Bundle evaluation (headline only)", headline=_headline(ev))
