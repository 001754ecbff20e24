"""How closely an engine's embeddings follow PyTorch's, judged on the decisions that matter.

Raw top-1 agreement counts every label that changed, including images whose two best classes
are a near-tie in fp32: there, any engine's rounding flips the label either way, and a random
or untrained head is full of such ties, so the raw figure moves by whole images from one export
to the next (96.9 % in one check, 100 % in the next on ViT-B/32). The margin-aware agreement
counts a disagreement only on *decisive* images: those whose fp32 top-1 margin (best score minus
the runner-up's) exceeds twice the score error the engine actually shows on the same images
(`error_bound`, the 99th percentile of |fp32 - engine| over every class score). Below that
margin, both scores moving by the error they show on 1 % of scores can swap them; above it, a
swap means an error larger than the engine shows elsewhere, which is what the check is for. The
cosine check stays as it was: an engine whose error is large everywhere has a large bound (few
decisive images) but a low cosine, and fails on that.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from harclip.model.head import Head

ERROR_QUANTILE = 0.99  # the score error an engine "shows": this quantile of |fp32 - engine|
MARGIN_FACTOR = 2.0  # decisive: fp32's top-1 margin > MARGIN_FACTOR x the error bound


@dataclass(frozen=True)
class Agreement:
    """One engine against PyTorch on the same images."""

    images: int
    max_abs_diff: float  # of the embeddings
    min_cosine: float
    top1_agreement: float  # raw: every image counts
    error_bound: float  # ERROR_QUANTILE of |fp32 - engine| class scores (logits)
    decisive: int  # images whose fp32 top-1 margin > MARGIN_FACTOR x error_bound
    decisive_agreement: float  # top-1 agreement on the decisive images (1.0 when none)

    def as_dict(self) -> dict[str, float | int]:
        return {
            "max_abs_diff": float(f"{self.max_abs_diff:.3g}"),
            "min_cosine": round(self.min_cosine, 6),
            "top1_agreement": round(self.top1_agreement, 4),
            "error_bound": float(f"{self.error_bound:.3g}"),
            "decisive_images": self.decisive,
            "decisive_agreement": round(self.decisive_agreement, 4),
        }


def compare(ref: np.ndarray, emb: np.ndarray, head: Head) -> Agreement:
    """`emb` (the engine's float32 [N, D] embeddings) against `ref` (PyTorch's, same images),
    scored by `head`."""
    if ref.shape != emb.shape or len(ref) == 0:
        raise ValueError(
            f"embeddings to compare must match and be non-empty: {ref.shape} {emb.shape}"
        )
    return compare_scores(
        head.logits(ref), head.logits(emb),
        max_abs_diff=float(np.abs(emb - ref).max()),
        min_cosine=float((emb * ref).sum(axis=1).min()),
    )  # fmt: skip


def compare_scores(
    ref: np.ndarray, got: np.ndarray, *, max_abs_diff: float = 0.0, min_cosine: float = 1.0
) -> Agreement:
    """The decision rule on class scores: `ref` and `got` float [N, C] (C >= 2)."""
    ref, got = np.asarray(ref, dtype=np.float64), np.asarray(got, dtype=np.float64)
    if ref.shape != got.shape or ref.ndim != 2 or ref.shape[0] == 0 or ref.shape[1] < 2:
        raise ValueError(f"scores must be [N>0, C>=2] and match: {ref.shape} {got.shape}")
    bound = float(np.quantile(np.abs(ref - got), ERROR_QUANTILE))
    top2 = np.sort(ref, axis=1)[:, -2:]
    margin = top2[:, 1] - top2[:, 0]
    same = ref.argmax(axis=1) == got.argmax(axis=1)
    decisive = margin > MARGIN_FACTOR * bound
    n = int(decisive.sum())
    return Agreement(
        images=len(ref),
        max_abs_diff=max_abs_diff,
        min_cosine=min_cosine,
        top1_agreement=float(same.mean()),
        error_bound=bound,
        decisive=n,
        decisive_agreement=float(same[decisive].mean()) if n else 1.0,
    )
