"""The evaluation report of one model on one split, the same for a fresh checkpoint and for any
bundle: `metrics.json` (everything), `summary.json` (the headline, for `dvc metrics`),
`confusion_matrix.png`, `per_class_accuracy.png`, `misclassified.png`, `predictions.csv` and
`per_class.csv` (for `dvc plots`), and `report.md` that embeds them."""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from training.evaluation.metrics import classification_metrics

GRID_MAX = 16
GRID_SIZE = 160  # pixels per tile


@dataclass(frozen=True)
class Predictions:
    """Probabilities [N, C] over `classes` for the images `files` whose true ids are `labels`."""

    probs: np.ndarray
    labels: np.ndarray
    files: list[Path]
    classes: tuple[str, ...]


def write_report(
    out: Path, preds: Predictions, *, title: str, about: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Write every report file into `out` (created) and return the metrics."""
    out.mkdir(parents=True, exist_ok=True)
    metrics = classification_metrics(preds.probs, preds.labels, preds.classes)
    doc = {"title": title, **(dict(about or {})), **metrics}
    (out / "metrics.json").write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2))
    summary = {k: v for k, v in doc.items() if k not in ("per_class", "confusion", "classes")}
    (out / "summary.json").write_bytes(orjson.dumps(summary, option=orjson.OPT_INDENT_2))
    _write_csvs(out, preds, metrics)
    import matplotlib

    matplotlib.use("Agg")
    _confusion_png(out / "confusion_matrix.png", np.array(metrics["confusion"]), preds.classes)
    _per_class_png(out / "per_class_accuracy.png", metrics, preds.classes)
    wrong = _misclassified_png(out / "misclassified.png", preds)
    (out / "report.md").write_text(_markdown(title, doc, metrics, wrong), encoding="utf-8")
    return metrics


def headline(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The scalar metrics (what trackers, the registry and the bundle manifest keep)."""
    return {k: float(metrics[k]) for k in ("accuracy", "macro_f1", "top5_accuracy")} | {
        "n": float(metrics["n"])
    }


def _write_csvs(out: Path, preds: Predictions, metrics: Mapping[str, Any]) -> None:
    predicted = preds.probs.argmax(axis=1)
    with (out / "predictions.csv").open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["file", "actual", "predicted", "score"])
        for file, t, p, row in zip(preds.files, preds.labels, predicted, preds.probs, strict=True):
            w.writerow([file.name, preds.classes[t], preds.classes[p], f"{row[p]:.4f}"])
    with (out / "per_class.csv").open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["class", "precision", "recall", "f1", "support"])
        for name, m in metrics["per_class"].items():
            w.writerow([name, f"{m['precision']:.4f}", f"{m['recall']:.4f}", f"{m['f1']:.4f}",
                        m["support"]])  # fmt: skip


def _confusion_png(path: Path, cm: np.ndarray, classes: Sequence[str]) -> None:
    import matplotlib.pyplot as plt

    rows = cm.sum(axis=1, keepdims=True)
    norm = np.divide(cm, rows, out=np.zeros(cm.shape), where=rows > 0)
    side = max(6.0, 0.45 * len(classes) + 2)
    fig, ax = plt.subplots(figsize=(side + 1, side))
    im = ax.imshow(norm, cmap="Blues", vmin=0.0, vmax=1.0)
    ax.set_xticks(range(len(classes)), labels=list(classes), rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(classes)), labels=list(classes), fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("confusion matrix (counts; colour = share of the true class)")
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            if cm[i, j]:
                colour = "white" if norm[i, j] > 0.5 else "black"
                ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=7, color=colour)
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _per_class_png(path: Path, metrics: Mapping[str, Any], classes: Sequence[str]) -> None:
    import matplotlib.pyplot as plt

    recall = [metrics["per_class"][c]["recall"] for c in classes]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.5 * len(classes) + 2), 4.5))
    bars = ax.bar(range(len(classes)), recall, color="#4C72B0")
    ax.axhline(metrics["accuracy"], color="#DD8452", linestyle="--",
               label=f"overall accuracy {metrics['accuracy']:.1%}")  # fmt: skip
    ax.axhline(
        1 / len(classes), color="grey", linestyle=":", label=f"chance {1 / len(classes):.1%}"
    )
    ax.set_xticks(range(len(classes)), labels=list(classes), rotation=60, ha="right", fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy (recall) per class")
    for b, v in zip(bars, recall, strict=True):
        ax.text(b.get_x() + b.get_width() / 2, v + 0.01, f"{v:.0%}", ha="center", fontsize=7)
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _misclassified_png(path: Path, preds: Predictions) -> int:
    """A grid of up to GRID_MAX wrongly classified images, most confident mistakes first, each
    titled with its true and predicted label; returns how many images are wrong in all."""
    import matplotlib.pyplot as plt

    from harclip.errors import DecodeError
    from harclip.model.preprocess import decode_image

    predicted = preds.probs.argmax(axis=1)
    wrong = np.flatnonzero(predicted != preds.labels)
    order = wrong[np.argsort(-preds.probs[wrong, predicted[wrong]], kind="stable")][:GRID_MAX]
    cols = 4
    rows = max(1, -(-len(order) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 2.6, rows * 2.9), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, i in zip(axes.flat, order, strict=False):
        try:
            img = decode_image(preds.files[i].read_bytes(), GRID_SIZE, max_pixels=40_000_000)
        except (OSError, DecodeError):
            img = np.zeros((GRID_SIZE, GRID_SIZE, 3), np.uint8)
        ax.imshow(img)
        p = predicted[i]
        ax.set_title(
            f"true: {preds.classes[preds.labels[i]]}\npred: {preds.classes[p]} "
            f"({preds.probs[i, p]:.0%})",
            fontsize=8,
        )
    if not len(order):
        axes[0, 0].text(0.5, 0.5, "no misclassified images", ha="center", va="center")
    fig.suptitle(f"misclassified: {len(wrong)} of {len(preds.labels)} (most confident first)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return len(wrong)


def _markdown(title: str, doc: Mapping[str, Any], metrics: Mapping[str, Any], wrong: int) -> str:
    lines = [f"# {title}", ""]
    about = {k: v for k, v in doc.items() if k not in metrics and k != "title"}
    for k, v in about.items():
        lines.append(f"- {k}: `{v}`")
    n = metrics["n"]
    lines += [
        "",
        "| metric | value |",
        "|---|---|",
        f"| images | {n} |",
        f"| accuracy | {metrics['accuracy']:.2%} |",
        f"| macro-F1 | {metrics['macro_f1']:.4f} |",
        f"| top-5 accuracy | {metrics['top5_accuracy']:.2%} |",
        f"| misclassified | {wrong} |",
        "",
        "| class | precision | recall | F1 | support |",
        "|---|---|---|---|---|",
    ]
    for name, m in metrics["per_class"].items():
        lines.append(
            f"| {name} | {m['precision']:.3f} | {m['recall']:.3f} | {m['f1']:.3f} | "
            f"{m['support']} |"
        )
    lines += [
        "",
        "![confusion matrix](confusion_matrix.png)",
        "",
        "![per-class accuracy](per_class_accuracy.png)",
        "",
        "![misclassified images](misclassified.png)",
        "",
    ]
    return "\n".join(lines)
