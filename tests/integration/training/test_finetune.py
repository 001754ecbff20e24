"""The fine-tuning modes on CPU with the tiny CLIP: full fine-tuning (the shared run), linear
probe, early stopping, WiSE-FT; and the run folder they leave."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
import torch

from harclip.clip.load import load_clip
from harclip.model.bundle import Bundle
from harclip.model.head import Head
from tests.support.training import CLASSES, TrainedRun, data_args, run_cli, tiny_args


def _vision(folder: Path) -> dict[str, torch.Tensor]:
    return load_clip(folder).model.vision_model.state_dict()  # type: ignore[no-any-return]


def _head(folder: Path) -> Head:
    return Head.load(folder / "head.safetensors", folder / "labels.json")


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_full_finetuning_leaves_model_report_and_bundle(
    trained_run: TrainedRun, tiny_model_dir: Path
) -> None:
    out = trained_run.output
    meta = orjson.loads((out / "model" / "training.json").read_bytes())
    assert meta["mode"] == "full" and meta["epochs_run"] == 2
    assert meta["steps"] == 2 * (16 // 8)  # 16 train photos, batch 8
    assert meta["data"]["train"] == 16 and meta["data"]["classes"] == 4
    assert not _same(_vision(out / "model"), _vision(tiny_model_dir))  # the tower moved
    head = _head(out / "model")
    assert head.labels == CLASSES and head.kind == "fine-tuned"
    history = [orjson.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in history] == [1, 2]
    assert all("val_accuracy" in h for h in history)
    bundle = Bundle.load(out / "bundle")
    assert set(bundle.engine_names) == {"onnx", "onnx-int8", "torchscript"}
    assert bundle.load_head().kind == "fine-tuned"
    assert bundle.manifest.metrics["eval"]["n"] == 8.0
    assert bundle.manifest.validation["engines"]["onnx"]["max_abs_diff"] < 1e-4


def test_linear_probe_trains_the_head_only(
    tiny_model_dir: Path, sample_data: Path, tmp_path: Path
) -> None:
    out = tmp_path / "probe"
    run_cli(["finetune", *data_args(sample_data),
             *tiny_args(tiny_model_dir, out, "--mode", "linear-probe", "--epochs", "1",
                        "--batch-size", "8", "--lr", "1e-2", "--no-export",
                        "--set", "train.final_eval=false")])  # fmt: skip
    assert _same(_vision(out / "model"), _vision(tiny_model_dir))
    trained = _head(out / "model")
    from training.model.classifier import zero_shot_head

    start = zero_shot_head(load_clip(tiny_model_dir), CLASSES)
    assert trained.weight.shape == start.weight.shape
    assert not torch.equal(torch.from_numpy(trained.weight), torch.from_numpy(start.weight))


def test_early_stopping_and_wise_ft_alpha_zero(
    tiny_model_dir: Path, sample_data: Path, tmp_path: Path
) -> None:
    """A learning rate too small to change a prediction: validation accuracy stays put, so
    patience 1 stops after epoch 2 of 5; WiSE-FT at alpha 0 gives back the zero-shot model."""
    out = tmp_path / "early"
    run_cli(["finetune", *data_args(sample_data),
             *tiny_args(tiny_model_dir, out, "--epochs", "5", "--batch-size", "8",
                        "--lr", "1e-12", "--set", "train.head_lr=1e-12",
                        "--set", "train.early_stopping_patience=1", "--wise-alpha", "0",
                        "--no-export", "--set", "train.final_eval=false")])  # fmt: skip
    meta = orjson.loads((out / "model" / "training.json").read_bytes())
    assert meta["stopped_early"] and meta["epochs_run"] == 2 and meta["restored_best"]
    assert _same(_vision(out / "model"), _vision(tiny_model_dir))
    from training.model.classifier import zero_shot_head

    start = zero_shot_head(load_clip(tiny_model_dir), CLASSES)
    assert torch.allclose(torch.from_numpy(_head(out / "model").weight),
                          torch.from_numpy(start.weight))  # fmt: skip


@pytest.mark.parametrize("value", ["train.lr=-1", "train.batch_size=0"])
def test_a_bad_config_value_is_one_line(value: str, capsys: pytest.CaptureFixture[str]) -> None:
    from training.cli import main

    assert main(["finetune", "--set", value, "--output", "/nonexistent/x"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("training finetune: error: invalid config value") and "\n" not in err
