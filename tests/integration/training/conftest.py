"""Fixtures of the training tests (helpers: tests/support/training.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.training import TrainedRun, data_args, run_cli, tiny_args


@pytest.fixture(scope="session")
def trained_run(
    tiny_model_dir: Path, sample_data: Path, tmp_path_factory: pytest.TempPathFactory
) -> TrainedRun:
    """Full fine-tuning of the tiny CLIP on 4 classes × 8 photos for 2 epochs with gradient
    accumulation, tracked in MLflow (SQLite in a temporary folder) and W&B (offline), then the
    test report and the bundle."""
    out = tmp_path_factory.mktemp("trained") / "run"
    uri = f"sqlite:///{out.parent / 'mlruns' / 'mlflow.db'}"
    (out.parent / "mlruns").mkdir()
    run_cli([
        "finetune", *data_args(sample_data),
        *tiny_args(tiny_model_dir, out, "--epochs", "2", "--batch-size", "8",
                   "--grad-accum", "2", "--mlflow", "--mlflow-uri", uri, "--wandb",
                   "--set", "tracking.run_name=trained-run", "--set", "train.log_every_steps=1"),
    ])  # fmt: skip
    return TrainedRun(out, uri, out / "wandb")  # W&B writes OUTPUT/wandb/offline-run-*
