"""MLflow (local SQLite store) and W&B (offline) both receive the shared run: parameters,
per-step and per-epoch metrics, system info, the evaluation plots and the bundle."""

from __future__ import annotations

from collections import Counter
from typing import Any

import orjson

from tests.integration.training.wandb_records import records
from tests.support.training import TrainedRun


def test_mlflow_has_the_run(trained_run: TrainedRun) -> None:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=trained_run.mlflow_uri)
    exp = client.get_experiment_by_name("harclip")
    assert exp is not None
    (run,) = client.search_runs([exp.experiment_id])
    assert run.info.run_name == "trained-run" and run.info.status == "FINISHED"
    assert run.data.params["train.batch_size"] == "8" and run.data.params["train.grad_accum"] == "2"
    assert run.data.tags["system.torch"] and run.data.tags["system.cpu_count"]
    losses = client.get_metric_history(run.info.run_id, "train/loss")
    assert [m.step for m in losses] == [1, 2, 3, 4]  # every step (log_every_steps 1)
    val = client.get_metric_history(run.info.run_id, "val_accuracy")
    assert [m.step for m in val] == [2, 4]  # each epoch
    assert 0.0 <= run.data.metrics["test/accuracy"] <= 1.0
    top = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"plots", "eval", "bundle", "config.json"} <= top
    plots = {a.path for a in client.list_artifacts(run.info.run_id, "plots")}
    assert "plots/confusion_matrix.png" in plots and "plots/misclassified.png" in plots
    bundle = {a.path for a in client.list_artifacts(run.info.run_id, "bundle")}
    assert {"bundle/manifest.json", "bundle/encoder.onnx", "bundle/head.safetensors"} <= bundle


def test_wandb_has_the_offline_run(trained_run: TrainedRun) -> None:
    (run_dir,) = sorted(trained_run.wandb_dir.glob("offline-run-*"))
    (log,) = run_dir.glob("run-*.wandb")  # what `wandb sync` uploads
    kinds: Counter[str] = Counter()
    history, summary, config = [], {}, {}
    for rec in records(log):
        kind = rec.WhichOneof("record_type")
        kinds[kind] += 1
        if kind == "run":
            assert rec.run.project == "harclip" and rec.run.display_name == "trained-run"
        elif kind == "history":
            history.append({_key(i): orjson.loads(i.value_json) for i in rec.history.item})
        elif kind == "summary":
            summary |= {_key(i): orjson.loads(i.value_json) for i in rec.summary.update}
        elif kind == "config":
            config |= {_key(i): orjson.loads(i.value_json) for i in rec.config.update}
    assert [h["_step"] for h in history if "train/loss" in h] == [1, 2, 3, 4]
    assert sum("val_accuracy" in h for h in history) == 2
    assert any(h.get("confusion_matrix/_type") == "image-file" for h in history)
    assert 0.0 <= summary["test/accuracy"] <= 1.0
    assert config["train"]["batch_size"] == 8 and "torch" in config["system"]
    assert kinds["artifact"] == 2  # the evaluation report and the bundle
    assert kinds["stats"] >= 1  # system metrics


def _key(item: Any) -> str:
    return item.key or "/".join(item.nested_key)
