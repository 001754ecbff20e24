"""Class probabilities for a split from a trained checkpoint (PyTorch) or from any bundle (its
engine and head, no torch), both over centre crops from `harclip.model.preprocess`; and the
distributed prediction the training loop uses for validation."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from training.data.loader import eval_batches
from training.data.split import Manifest
from training.errors import DataError
from training.evaluation.metrics import softmax
from training.evaluation.report import Predictions

if TYPE_CHECKING:
    import torch
    from torch import nn

    from harclip.model.head import Head
    from training.fit.distributed import Dist

Progress = Callable[[int], None]


def predict_bundle(
    bundle_dir: Path,
    manifest: Manifest,
    split: str,
    *,
    engine: str = "onnx",
    batch: int = 32,
    progress: Progress | None = None,
) -> Predictions:
    """A bundle judged as it serves: its engine's embeddings and its head's probabilities,
    restricted to the split's classes (each must be one of the head's labels)."""
    from harclip.config import ModelSettings
    from harclip.engines import create_engine
    from harclip.model.bundle import Bundle

    bundle = Bundle.load(bundle_dir)
    head = bundle.load_head()
    cols = columns(head, manifest.classes, str(bundle_dir))
    eng = create_engine(bundle, engine, ModelSettings())  # type: ignore[arg-type]
    files = manifest.paths(split)
    logits = []
    try:
        for images in eval_batches(files, bundle.manifest.image_size, batch):
            logits.append(head.logits(eng.embed(images))[:, cols])
            if progress:
                progress(len(images))
    finally:
        eng.close()
    return _predictions(logits, manifest, split, files)


def predict_head(
    embed: Callable[[np.ndarray], np.ndarray],
    head: Head,
    manifest: Manifest,
    split: str,
    *,
    image_size: int,
    batch: int = 32,
    progress: Progress | None = None,
) -> Predictions:
    """Probabilities of `head` over `embed(uint8 batch) -> [B, D]` embeddings."""
    cols = columns(head, manifest.classes, "the head")
    files = manifest.paths(split)
    logits = []
    for images in eval_batches(files, image_size, batch):
        logits.append(head.logits(embed(images))[:, cols])
        if progress:
            progress(len(images))
    return _predictions(logits, manifest, split, files)


def predict_model(
    model: nn.Module,
    files: Sequence[Path],
    *,
    image_size: int,
    batch: int,
    d: Dist,
    amp: torch.dtype | None = None,
    progress: Progress | None = None,
) -> np.ndarray:
    """Logits [N, C] of a (possibly wrapped) classifier, every rank predicting every world-th
    image; every rank returns all of them. FSDP needs every rank in every forward, so the
    ranks' shares are padded to the same number of batches."""
    import torch

    n = len(files)
    mine = list(files[d.rank :: d.world])
    per_rank = -(-n // d.world)
    mine += [files[-1]] * (per_rank - len(mine))  # padding, dropped after the gather
    model.eval()
    outs = []
    with torch.no_grad(), _autocast(d, amp):
        for images in eval_batches(mine, image_size, batch):
            pixels = torch.from_numpy(images).to(d.device)
            outs.append(model(pixels).float())
            if progress:
                progress(len(images) * d.world)
    model.train()
    local = torch.cat(outs) if outs else torch.zeros((0, 0), device=d.device)
    return d.gather_rows(local, n).cpu().numpy()


def predictions_from_logits(logits: np.ndarray, manifest: Manifest, split: str) -> Predictions:
    return _predictions([logits], manifest, split, manifest.paths(split))


def _predictions(
    logits: list[np.ndarray], manifest: Manifest, split: str, files: list[Path]
) -> Predictions:
    if not files:
        raise DataError(f"split {split!r} of the manifest holds no images")
    z = np.concatenate(logits).astype(np.float64)
    return Predictions(
        probs=softmax(z).astype(np.float32),
        labels=np.array(manifest.label_ids(split), dtype=np.int64),
        files=files,
        classes=manifest.classes,
    )


def columns(head: Head, classes: Sequence[str], where: str) -> list[int]:
    index = {label: i for i, label in enumerate(head.labels)}
    missing = [c for c in classes if c not in index]
    if missing:
        raise DataError(
            f"{where} has no label for class {missing[0]!r} of the data "
            f"({len(missing)} classes missing; its labels: {', '.join(head.labels[:5])}...)"
        )
    return [index[c] for c in classes]


def _autocast(d: Dist, amp: torch.dtype | None) -> contextlib.AbstractContextManager[object]:
    import torch

    if amp is None or d.strategy == "fsdp":  # FSDP casts through its own policy
        return contextlib.nullcontext()
    return torch.autocast(device_type=d.device.type, dtype=amp)
