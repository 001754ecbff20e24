"""Training runs on CPU with the tiny CLIP and a few sample photos: the argument lists every test
builds on, and one trained run (MLflow + W&B tracking, report, bundle) shared by the tests that
judge its outputs."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from training.cli import main

ROOT = Path(__file__).resolve().parents[3]
CLASSES = ("calling", "cycling", "running", "sitting")  # 4 of the 15 sample classes


def data_args(sample_data: Path, per_class: int = 8) -> list[str]:
    """A few photos of 4 classes of the sample, split 50/25/25."""
    return [
        "--data", str(sample_data / "har-sample"),
        "--set", f"data.classes=[{', '.join(CLASSES)}]",
        "--set", f"data.max_per_class={per_class}",
        "--set", "data.val_fraction=0.25", "--set", "data.test_fraction=0.25",
        "--set", "data.workers=0",
    ]  # fmt: skip


def tiny_args(model: Path, output: Path, *extra: str) -> list[str]:
    """Full fine-tuning of the tiny CLIP at a learning rate that moves it."""
    return [
        "--model", str(model), "--output", str(output), "--quiet",
        "--lr", "1e-3", "--set", "train.head_lr=1e-2", "--set", "train.llrd=0.8",
        "--set", "train.warmup_fraction=0.2", "--set", "train.eval_batch_size=16",
        "--set", "train.threads=1", *extra,
    ]  # fmt: skip


def run_cli(args: Sequence[str]) -> None:
    """`python -m training ARGS` in this process; fails the test on a non-zero status."""
    code = main(list(args))
    assert code == 0, f"training {' '.join(args[:1])} exited {code}"


def subprocess_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["OMP_NUM_THREADS"] = "1"
    return env


def torchrun(
    nproc: int, args: Sequence[str], timeout_s: float = 240
) -> subprocess.CompletedProcess[str]:
    """`torchrun --nproc-per-node N -m training ARGS` on this machine (gloo on CPU)."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           f"--nproc-per-node={nproc}", "-m", "training", *args]  # fmt: skip
    proc = subprocess.run(cmd, cwd=ROOT, env=subprocess_env(), capture_output=True, text=True,
                          timeout=timeout_s)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc


@dataclass(frozen=True)
class TrainedRun:
    output: Path
    mlflow_uri: str
    wandb_dir: Path

    @property
    def bundle(self) -> Path:
        return self.output / "bundle"


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
