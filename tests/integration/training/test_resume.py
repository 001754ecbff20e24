"""A run killed with SIGKILL continues when the same command runs again, and ends where an
uninterrupted run ends."""

from __future__ import annotations

import subprocess
from pathlib import Path

import orjson
import pytest

from harclip.clip.load import load_clip
from harclip.services.child import Child
from tests.support.processes import ROOT
from tests.support.training import data_args, run_cli, subprocess_env, tiny_args

TIMEOUT_S = 240.0


def _args(tiny_model_dir: Path, sample_data: Path, out: Path) -> list[str]:
    """3 epochs × 4 steps of 2 photos, a checkpoint after every step."""
    return ["finetune", *data_args(sample_data, per_class=4),
            *tiny_args(tiny_model_dir, out, "--epochs", "3", "--batch-size", "2",
                       "--no-export", "--set", "train.final_eval=false",
                       "--set", "train.early_stopping_patience=null",
                       "--set", "train.checkpoint_every_steps=1")]  # fmt: skip


def _first_checkpoint(proc: Child, folder: Path) -> None:
    """Until a complete checkpoint exists (or the process ended, which fails the test)."""
    deadline_polls = int(TIMEOUT_S / 0.05)
    for _ in range(deadline_polls):
        if any(folder.glob("step-*/COMPLETE")):
            return
        try:
            proc.proc.wait(timeout=0.05)  # the poll interval; returns early only if it ended
        except subprocess.TimeoutExpired:
            continue
        raise AssertionError(f"the run ended (status {proc.returncode}) before it was killed")
    raise AssertionError(f"no checkpoint within {TIMEOUT_S:g} s")


@pytest.mark.timeout(600)  # several fresh processes on 2 shared cores
def test_killed_run_resumes_and_matches_an_uninterrupted_one(
    tiny_model_dir: Path, sample_data: Path, tmp_path: Path
) -> None:
    out = tmp_path / "killed"
    args = _args(tiny_model_dir, sample_data, out)
    proc = Child.python("training", *args, cwd=ROOT, env=subprocess_env())
    try:
        _first_checkpoint(proc, out / "checkpoints")
    finally:
        proc.stop(kill=True)
    assert not (out / "model").exists()
    done = max(int(p.parent.name.removeprefix("step-"))
               for p in (out / "checkpoints").glob("step-*/COMPLETE"))  # fmt: skip
    assert 1 <= done < 12

    run_cli(args)  # the same command again
    meta = orjson.loads((out / "model" / "training.json").read_bytes())
    assert meta["steps"] == 12 and meta["epochs_run"] == 3
    assert meta["resumed_at"] and meta["resumed_at"][0] >= done

    reference = tmp_path / "uninterrupted"
    run_cli(_args(tiny_model_dir, sample_data, reference))
    a = load_clip(out / "model").model.vision_model.state_dict()
    b = load_clip(reference / "model").model.vision_model.state_dict()
    assert max(float((a[k] - b[k]).abs().max()) for k in a) <= 1e-6
