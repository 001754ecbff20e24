"""Helpers of the training tests (CPU, the tiny CLIP, a few sample photos): the argument lists
every test builds on, running the CLI in this process or under torchrun, and a trained run."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from harclip.config import load_settings
from tests.support.processes import ROOT, env_of
from training.cli import main

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
    """The environment of a training child process: this one's settings, the repository on its
    path, one OpenMP thread."""
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    return env_of(load_settings(), {"PYTHONPATH": path, "OMP_NUM_THREADS": "1"})


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
