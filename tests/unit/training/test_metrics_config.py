"""Metrics, and config errors that name the key."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from harclip.errors import ConfigError
from training.config import load_config, parse_override
from training.evaluation.metrics import classification_metrics


def test_metrics_on_a_known_confusion() -> None:
    labels = np.array([0, 0, 1, 1, 2, 2])
    probs = np.eye(3)[[0, 1, 1, 1, 2, 0]] * 0.8 + 0.2 / 3
    m = classification_metrics(probs, labels, ["a", "b", "c"])
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["confusion"] == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    assert m["per_class"]["b"] == pytest.approx(
        {"precision": 2 / 3, "recall": 1.0, "f1": 0.8, "support": 2}
    )
    assert m["macro_f1"] == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)
    assert m["top5_accuracy"] == 1.0  # 3 classes: top-3


def test_config_layers_and_overrides(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text("train:\n  lr: 0.01\n  epochs: 3\n")
    cfg = load_config(f, preset="cpu-small", overrides={"train.epochs": 5})
    assert cfg.train.lr == 0.01 and cfg.train.epochs == 5  # file over preset, flag over file
    assert cfg.model.scratch is not None  # from the preset
    assert parse_override("train.lr=3e-4") == ("train.lr", 3e-4)
    assert parse_override("data.classes=[a, b]") == ("data.classes", ["a", "b"])


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"train.lr": -1}, r"invalid config value train\.lr: .*greater than 0.* \(got -1\)"),
        ({"train.strategy": "zero"}, r"train\.strategy"),
        ({"train.lrr": 1}, r"unknown key 'train\.lrr'"),
        ({"data.val_fraction": 0.6, "data.test_fraction": 0.5}, r"below 1"),
    ],
)
def test_bad_values_fail_in_one_line(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as e:
        load_config(overrides=overrides)
    assert "\n" not in str(e.value)


def test_unknown_preset_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown preset"):
        load_config(preset="huge")
    f = tmp_path / "bad.yaml"
    f.write_text("train: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(f)


def test_shipped_configs_are_valid(tmp_path: Path) -> None:
    """params.yaml (DVC) and the Kubeflow job's config load as they are."""
    import yaml

    root = Path(__file__).resolve().parents[3]
    cfg = load_config(root / "params.yaml")
    assert cfg.model.scratch is not None and cfg.train.restart_on_change
    docs = list(yaml.safe_load_all((root / "k8s" / "training" / "pytorchjob.yaml").read_text()))
    job_cfg = tmp_path / "train.yaml"
    job_cfg.write_text(docs[0]["data"]["train.yaml"])
    cfg = load_config(job_cfg)
    assert cfg.train.strategy == "fsdp" and cfg.train.batch_size % 16 == 0
