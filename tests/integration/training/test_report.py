"""The evaluation report: numbers, and PNGs that are real pictures; the same report for the
exported bundle (`evaluate --bundle`) agrees with the checkpoint's."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import orjson

from tests.support.training import TrainedRun, data_args, run_cli

PNGS = ("confusion_matrix.png", "per_class_accuracy.png", "misclassified.png")


def _check_png(path: Path) -> None:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert img is not None, f"{path.name} is not a readable PNG"
    h, w = img.shape[:2]
    assert h >= 300 and w >= 400, f"{path.name} is only {w}×{h}"
    assert path.stat().st_size > 10_000
    assert float(img.std()) > 10.0, f"{path.name} is (nearly) one colour"
    colours = np.unique(img.reshape(-1, 3)[::7], axis=0)
    assert len(colours) > 50, f"{path.name} has only {len(colours)} colours"


def test_report_of_the_trained_model(trained_run: TrainedRun) -> None:
    out = trained_run.output / "eval"
    metrics = orjson.loads((out / "metrics.json").read_bytes())
    assert metrics["n"] == 8 and metrics["classes"] == ["calling", "cycling", "running", "sitting"]
    assert {"accuracy", "macro_f1", "top5_accuracy", "per_class", "confusion"} <= set(metrics)
    assert sum(map(sum, metrics["confusion"])) == 8
    assert set(metrics["per_class"]["cycling"]) == {"precision", "recall", "f1", "support"}
    for name in PNGS:
        _check_png(out / name)
    md = (out / "report.md").read_text()
    assert all(f"]({name})" in md for name in PNGS) and "| macro-F1 |" in md
    assert (out / "predictions.csv").read_text().count("\n") == 9


def test_bundle_report_agrees_with_the_checkpoint(
    trained_run: TrainedRun, sample_data: Path, tmp_path: Path
) -> None:
    report = tmp_path / "bundle-eval"
    run_cli(["evaluate", *data_args(sample_data), "--output", str(trained_run.output),
             "--bundle", str(trained_run.bundle), "--report", str(report), "--quiet"])  # fmt: skip
    for name in PNGS:
        _check_png(report / name)
    a = orjson.loads((report / "metrics.json").read_bytes())
    b = orjson.loads((trained_run.output / "eval" / "metrics.json").read_bytes())
    assert a["split_fingerprint"] == b["split_fingerprint"]
    assert abs(a["accuracy"] - b["accuracy"]) <= 1 / 8  # ONNX vs PyTorch: at most one flip
