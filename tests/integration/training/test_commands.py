"""The other commands on the sample photos: `--help` of each, `prepare` with its clear errors,
`zeroshot` with its prompt-set table, and the cpu-small preset (one epoch here; the full recipe
is measured in docs/training.md) leaving a servable bundle of a CLIP trained from scratch."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from harclip.model.bundle import Bundle
from tests.support.training import CLASSES, data_args, run_cli
from training.cli import main

COMMANDS = ("prepare", "zeroshot", "finetune", "evaluate", "export", "register", "push")


@pytest.mark.parametrize("command", COMMANDS)
def test_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main([command, "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "--config" in out and "--set" in out and "--output" in out


def test_prepare_writes_the_split_and_names_a_missing_class(
    sample_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_cli(["prepare", *data_args(sample_data), "--output", str(tmp_path), "--quiet"])
    doc = orjson.loads((tmp_path / "split.json").read_bytes())
    assert doc["classes"] == list(CLASSES) and doc["counts"] == {"train": 16, "val": 8, "test": 8}
    assert set(doc["fingerprints"]) == {"train", "val", "test"}
    bad = ["--set", "data.classes=[running, juggling]"]
    code = main(["prepare", "--data", str(sample_data / "har-sample"), "--quiet",
                 "--output", str(tmp_path / "x"), *bad])  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.endswith("juggling is missing (1 missing)") and "\n" not in err


def test_zeroshot_compares_prompt_sets(
    tiny_model_dir: Path, sample_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_cli(["zeroshot", *data_args(sample_data), "--model", str(tiny_model_dir),
             "--output", str(tmp_path), "--quiet"])  # fmt: skip
    table = capsys.readouterr().out
    assert "ensemble (7 templates)" in table and "action phrase only" in table
    doc = orjson.loads((tmp_path / "zeroshot" / "prompt_sets.json").read_bytes())
    assert len(doc["results"]) == 9 and doc["n"] == 8
    assert (tmp_path / "zeroshot" / "confusion_matrix.png").is_file()


def test_cpu_small_preset_leaves_a_servable_bundle(sample_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "small"
    run_cli(["finetune", "--preset", "cpu-small", "--data", str(sample_data / "har-sample"),
             "--output", str(out), "--epochs", "1", "--quiet",
             "--set", "data.max_per_class=8", "--set", "train.batch_size=32",
             "--set", "data.workers=0"])  # fmt: skip
    bundle = Bundle.load(out / "bundle")
    m = bundle.manifest
    assert m.image_size == 224 and m.base_model.startswith("scratch:")
    assert bundle.load_head().kind == "fine-tuned" and len(bundle.load_head().labels) == 15
    assert m.metrics["eval"]["n"] == 30.0  # 15 classes × 2 held-out photos
    for engine, v in m.validation["engines"].items():  # downscaling inside every graph agrees
        assert v["top1_agreement"] == 1.0 or engine == "onnx-int8", engine
    config = orjson.loads((out / "base-model" / "config.json").read_bytes())
    assert config["vision_config"]["image_size"] == 56
