"""Classification metrics from class probabilities: accuracy, macro-F1, per-class precision /
recall / F1, top-5 accuracy, confusion matrix, cross-entropy of logits. Pure numpy."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray, num_classes: int) -> np.ndarray:
    """int64 [C, C]: row = true class, column = predicted class."""
    m = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(m, (labels, predicted), 1)
    return m


def classification_metrics(
    probs: np.ndarray, labels: np.ndarray, classes: Sequence[str]
) -> dict[str, Any]:
    """Metrics of probabilities [N, C] against true class ids [N]."""
    n, c = probs.shape
    if len(labels) != n or c != len(classes):
        raise ValueError(
            f"probs {probs.shape} do not fit {len(labels)} labels / {len(classes)} classes"
        )
    predicted = probs.argmax(axis=1)
    cm = confusion_matrix(labels, predicted, c)
    tp = np.diag(cm).astype(np.float64)
    support = cm.sum(axis=1).astype(np.float64)
    predicted_n = cm.sum(axis=0).astype(np.float64)
    precision = np.divide(tp, predicted_n, out=np.zeros(c), where=predicted_n > 0)
    recall = np.divide(tp, support, out=np.zeros(c), where=support > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros(c), where=denom > 0)
    present = support > 0
    k = min(5, c)
    topk = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    top5 = float((topk == labels[:, None]).any(axis=1).mean()) if n else 0.0
    return {
        "n": int(n),
        "accuracy": float(tp.sum() / n) if n else 0.0,
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "top5_accuracy": top5,
        "per_class": {
            name: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, name in enumerate(classes)
        },
        "confusion": cm.tolist(),
        "classes": list(classes),
    }


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)  # type: ignore[no-any-return]


def cross_entropy(logits: np.ndarray, labels: np.ndarray) -> float:
    """The mean cross-entropy (nats) of logits [N, C] against true class ids [N]."""
    z = logits.astype(np.float64)
    z = z - z.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return float(-logp[np.arange(len(labels)), labels].mean())
