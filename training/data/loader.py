"""Batches for training and evaluation.

Training: `BatchPlan` cuts each epoch's seeded permutation into global batches of
`batch_size` images and hands each rank its micro-batches (global batch g, micro-step k, rank r
gets slice k·world + r), so one process and N processes see the same global batch; a resumed
run starts at the step it stopped at. `TrainImages` decodes and augments an image with an RNG
seeded by (seed, epoch, index). Evaluation: centre crops through `harclip.model.preprocess`, exactly
what the engines see when serving.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from harclip.errors import DecodeError
from training.config import AugmentConfig
from training.data.augment import augment
from training.data.split import MAX_PIXELS
from training.errors import DataError, TrainingError

Key = tuple[int, int]  # (image index, epoch)


class BatchPlan(Sampler[list[Key]]):
    """The micro-batches of one rank, epoch by epoch (`set_epoch` before iterating)."""

    def __init__(
        self, n: int, batch_size: int, *, world: int, rank: int, accum: int, seed: int
    ) -> None:
        if batch_size % (world * accum):
            raise TrainingError(
                f"batch_size {batch_size} must be divisible by processes × grad_accum "
                f"= {world} × {accum}"
            )
        if n < batch_size:
            raise TrainingError(
                f"the train split has {n} images, fewer than one batch of {batch_size}; "
                "lower train.batch_size"
            )
        self.n, self.batch_size, self.world, self.rank = n, batch_size, world, rank
        self.accum, self.seed = accum, seed
        self.micro = batch_size // (world * accum)
        self.steps_per_epoch = n // batch_size  # the last incomplete batch is dropped
        self.epoch, self.start_step = 0, 0

    def set_epoch(self, epoch: int, start_step: int = 0) -> None:
        self.epoch, self.start_step = epoch, start_step

    def global_batch(self, epoch: int, step: int) -> np.ndarray:
        """The image indices of global batch `step` of `epoch` (every rank's part)."""
        perm = np.random.default_rng((self.seed, epoch)).permutation(self.n)
        return perm[step * self.batch_size : (step + 1) * self.batch_size]

    def __iter__(self) -> Iterator[list[Key]]:
        perm = np.random.default_rng((self.seed, self.epoch)).permutation(self.n)
        for step in range(self.start_step, self.steps_per_epoch):
            batch = perm[step * self.batch_size : (step + 1) * self.batch_size]
            for k in range(self.accum):
                j = k * self.world + self.rank
                part = batch[j * self.micro : (j + 1) * self.micro]
                yield [(int(i), self.epoch) for i in part]

    def __len__(self) -> int:
        return (self.steps_per_epoch - self.start_step) * self.accum


class TrainImages(Dataset[tuple[np.ndarray, int]]):
    """Item (index, epoch) → (augmented uint8 [S, S, 3] RGB, label id)."""

    def __init__(
        self,
        files: Sequence[Path],
        labels: Sequence[int],
        size: int,
        cfg: AugmentConfig,
        seed: int,
    ) -> None:
        self.files, self.labels = list(files), list(labels)
        self.size, self.cfg, self.seed = size, cfg, seed

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, key: Key) -> tuple[np.ndarray, int]:
        from harclip.model.preprocess import decode_image, decode_rgb

        index, epoch = key
        data = _read(self.files[index])
        try:
            if not self.cfg.enabled:
                return decode_image(data, self.size, max_pixels=MAX_PIXELS), self.labels[index]
            image = decode_rgb(data, max_pixels=MAX_PIXELS, min_side=self.size)
        except DecodeError as e:
            raise DataError(f"{self.files[index]}: {e} (it changed since `prepare`?)") from None
        rng = np.random.default_rng((self.seed, epoch, index))
        return augment(image, self.size, rng, self.cfg), self.labels[index]


def collate(items: list[tuple[np.ndarray, int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """→ uint8 [B, S, S, 3], int64 [B]."""
    images = torch.from_numpy(np.stack([im for im, _ in items]))
    labels = torch.tensor([label for _, label in items], dtype=torch.int64)
    return images, labels


def train_loader(dataset: TrainImages, plan: BatchPlan, workers: int) -> DataLoader[Any]:
    return DataLoader(
        dataset,
        batch_sampler=plan,
        num_workers=workers,
        collate_fn=collate,
        persistent_workers=workers > 0,
    )


def eval_batches(files: Sequence[Path], size: int, batch: int) -> Iterator[np.ndarray]:
    """Centre-cropped uint8 [B, S, S, 3] batches of `files`, decoded two at a time in threads;
    `DataError` naming a file that no longer decodes."""
    from harclip.model.preprocess import preprocess_batch

    with ThreadPoolExecutor(2) as pool:
        for start in range(0, len(files), batch):
            part = files[start : start + batch]
            images, errors = preprocess_batch(
                [_read(f) for f in part], size, max_pixels=MAX_PIXELS, pool=pool
            )
            for f, err in zip(part, errors, strict=True):
                if err is not None:
                    raise DataError(f"{f}: {err} (it changed since `prepare`?)")
            yield images


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise DataError(f"cannot read {path}: {e.strerror} (it moved since `prepare`?)") from None
