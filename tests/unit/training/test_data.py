"""Batches: the plan gives every rank its part of the same global batch, augmentation is
seeded per image."""

from __future__ import annotations

import numpy as np
import pytest

from training.config import AugmentConfig
from training.data.augment import augment, color_jitter, random_resized_crop
from training.data.loader import BatchPlan
from training.errors import TrainingError


def _flat(plan: BatchPlan, epoch: int) -> list[list[int]]:
    plan.set_epoch(epoch)
    return [[i for i, _ in mb] for mb in plan]


def test_ranks_and_micro_batches_cover_the_same_global_batches() -> None:
    single = BatchPlan(50, 8, world=1, rank=0, accum=1, seed=3)
    ranks = [BatchPlan(50, 8, world=2, rank=r, accum=2, seed=3) for r in range(2)]
    assert single.steps_per_epoch == 6 and len(single) == 6 and len(ranks[0]) == 12
    one = _flat(single, 1)
    parts = [_flat(p, 1) for p in ranks]
    for step in range(6):
        # micro-step k of rank r holds slice k * world + r of the global batch
        got = [i for k in range(2) for r in range(2) for i in parts[r][2 * step + k]]
        assert got == one[step]
    assert _flat(single, 1) == one and _flat(single, 2) != one  # per-epoch permutation


def test_resume_starts_at_the_step() -> None:
    plan = BatchPlan(40, 4, world=1, rank=0, accum=1, seed=0)
    full = _flat(plan, 0)
    plan.set_epoch(0, start_step=7)
    assert [[i for i, _ in mb] for mb in plan] == full[7:] and len(plan) == 3


def test_bad_batch_sizes_are_refused() -> None:
    with pytest.raises(TrainingError, match="divisible"):
        BatchPlan(50, 6, world=2, rank=0, accum=2, seed=0)
    with pytest.raises(TrainingError, match="fewer than one batch"):
        BatchPlan(5, 8, world=1, rank=0, accum=1, seed=0)


def _image() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (120, 90, 3), dtype=np.uint8)


def test_augment_is_deterministic_per_seed_and_keeps_the_contract() -> None:
    cfg = AugmentConfig()
    a = augment(_image(), 64, np.random.default_rng((1, 2, 3)), cfg)
    b = augment(_image(), 64, np.random.default_rng((1, 2, 3)), cfg)
    c = augment(_image(), 64, np.random.default_rng((1, 2, 4)), cfg)
    assert a.shape == (64, 64, 3) and a.dtype == np.uint8 and a.flags.c_contiguous
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_crop_and_jitter_ranges() -> None:
    img = _image()
    full = random_resized_crop(img, 32, np.random.default_rng(0), (1.0, 1.0), (1.0, 1.0))
    assert full.shape == (32, 32, 3)
    gray = np.full((10, 10, 3), 100, np.uint8)
    out = color_jitter(gray, np.random.default_rng(0), 0.5, 0.0, 0.0)
    assert 50 <= int(out[0, 0, 0]) <= 150 and np.all(out == out[0, 0, 0])
    assert np.array_equal(color_jitter(gray, np.random.default_rng(0), 0, 0.5, 0.5), gray)
