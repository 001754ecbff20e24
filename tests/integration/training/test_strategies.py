"""DDP and FSDP (2 gloo processes on CPU) against one process for the same global batch: the
same losses and the same weights within a stated tolerance. The FSDP run stops half way,
leaves a sharded checkpoint, and resumes from it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
import torch

from harclip.clip.load import load_clip
from harclip.model.head import Head
from tests.support.training import data_args, run_cli, tiny_args, torchrun

# fp32 sums in another order (two half-batch backward passes + all-reduce) and Adam's
# normalised steps: measured max |Δweight| 2.8e-7 (training moved weights by 2.6e-3) and
# |Δloss| 1e-7 over 4 steps; the bounds leave a 35x margin.
WEIGHT_TOL = 1e-5
LOSS_TOL = 1e-5


def _args(tiny_model_dir: Path, sample_data: Path, out: Path, *extra: str) -> list[str]:
    """2 epochs of 1 step: 8 train photos (4 classes × 2), global batch 8."""
    return ["finetune", *data_args(sample_data, per_class=4),
            *tiny_args(tiny_model_dir, out, "--epochs", "2", "--batch-size", "8",
                       "--no-export", "--set", "train.final_eval=false",
                       "--set", "train.early_stopping_patience=null", *extra)]  # fmt: skip


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    sd = {f"vision.{k}": v for k, v in load_clip(folder).model.vision_model.state_dict().items()}
    head = Head.load(folder / "head.safetensors", folder / "labels.json")
    return sd | {
        "head.weight": torch.from_numpy(head.weight),
        "head.bias": torch.from_numpy(head.bias),
    }


def _losses(folder: Path) -> list[float]:
    meta = orjson.loads((folder / "training.json").read_bytes())
    return [h["train_loss"] for h in meta["history"]]


def _max_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k] - b[k]).abs().max()) for k in a)


@pytest.fixture(scope="module")
def reference(
    tiny_model_dir: Path, sample_data: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[dict[str, torch.Tensor], list[float]]:
    """Weights and losses of one process."""
    single = tmp_path_factory.mktemp("strategies") / "single"
    run_cli(_args(tiny_model_dir, sample_data, single))
    return _weights(single / "model"), _losses(single / "model")


def _assert_matches(folder: Path, reference: tuple[dict[str, torch.Tensor], list[float]]) -> None:
    ref_w, ref_loss = reference
    assert _max_diff(_weights(folder), ref_w) <= WEIGHT_TOL
    losses = _losses(folder)
    assert max(abs(a - b) for a, b in zip(losses, ref_loss, strict=True)) <= LOSS_TOL


@pytest.mark.timeout(600)  # 2 processes + the launcher on 2 shared cores
def test_ddp_matches_one_process(
    tiny_model_dir: Path, sample_data: Path, tmp_path: Path, reference: Any
) -> None:
    torchrun(2, _args(tiny_model_dir, sample_data, tmp_path / "ddp", "--strategy", "ddp"))
    _assert_matches(tmp_path / "ddp" / "model", reference)


@pytest.mark.timeout(600)
def test_fsdp_matches_one_process_and_resumes_a_sharded_checkpoint(
    tiny_model_dir: Path, sample_data: Path, tmp_path: Path, reference: Any
) -> None:
    fsdp = tmp_path / "fsdp"
    sharded = ["--strategy", "fsdp", "--set", "train.fsdp_state_dict=sharded"]
    torchrun(2, _args(tiny_model_dir, sample_data, fsdp, *sharded, "--max-steps", "1"))
    ckpts = sorted((fsdp / "checkpoints").glob("step-*"))
    assert ckpts[-1].name == "step-0000001" and (ckpts[-1] / "dcp").is_dir()
    torchrun(2, _args(tiny_model_dir, sample_data, fsdp, *sharded))
    meta = orjson.loads((fsdp / "model" / "training.json").read_bytes())
    assert meta["strategy"] == "fsdp" and meta["world"] == 2 and meta["resumed_at"] == [1]
    _assert_matches(fsdp / "model", reference)
