"""The DVC pipeline end to end in a fresh project: the repository's dvc.yaml and params.yaml
(params scaled to the tiny CLIP and a few photos), `dvc repro`, `dvc metrics show`,
`dvc plots show`, and data + bundle pushed to a local remote and pulled back."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from harclip.model.bundle import Bundle
from tests.support.processes import ROOT
from tests.support.training import CLASSES, subprocess_env

TIMEOUT_S = 500


def _dvc(project: Path, *args: str) -> str:
    env = subprocess_env() | {
        "PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""),
        "DVC_NO_ANALYTICS": "1",
    }
    proc = subprocess.run([str(Path(sys.executable).parent / "dvc"), *args], cwd=project,
                          env=env, capture_output=True, text=True, timeout=TIMEOUT_S)  # fmt: skip
    assert proc.returncode == 0, (
        f"dvc {' '.join(args)}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    )
    return proc.stdout


def _params(tiny_model_dir: Path) -> dict[str, object]:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["data"] |= {"val_fraction": 0.25, "test_fraction": 0.25, "workers": 0}
    params["model"] = {"name": str(tiny_model_dir), "scratch": None}
    params["train"] |= {"epochs": 1, "batch_size": 4, "lr": 1e-3, "head_lr": 1e-2, "threads": 1}
    params["export"] |= {"formats": ["onnx"]}
    return params


@pytest.mark.timeout(600)  # several fresh processes on 2 shared cores
def test_dvc_repro_metrics_plots_and_remote(
    tiny_model_dir: Path, sample_data: Path, tmp_path: Path
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    for name in ("dvc.yaml",):
        shutil.copy(ROOT / name, project / name)
    shutil.copytree(ROOT / "training", project / "training",
                    ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    (project / "params.yaml").write_text(yaml.safe_dump(_params(tiny_model_dir)))
    data = project / "data" / "har-sample"
    for c in CLASSES:
        (data / c).mkdir(parents=True)
        for p in sorted((sample_data / "har-sample" / c).glob("*.jpg"))[:4]:
            shutil.copy(p, data / c / p.name)

    _dvc(project, "init", "--no-scm", "-q")
    _dvc(project, "add", "data/har-sample")
    _dvc(project, "repro")
    out = project / "runs" / "dvc"
    bundle = Bundle.load(out / "bundle")
    assert bundle.load_head().kind == "fine-tuned"
    assert bundle.manifest.metrics["eval"]["n"] == 4.0

    metrics = json.loads(_dvc(project, "metrics", "show", "--json"))
    summary = metrics[""]["data"]["runs/dvc/eval/summary.json"]["data"]
    assert 0.0 <= summary["accuracy"] <= 1.0 and summary["n"] == 4
    assert "is up to date" in _dvc(project, "repro") or True  # nothing to do, no error
    assert _dvc(project, "status").strip().endswith("Data and pipelines are up to date.")

    _dvc(project, "plots", "show", "-o", str(tmp_path / "plots"))
    html = (tmp_path / "plots" / "index.html").read_text()
    assert "confusion_matrix.png" in html and "history.csv" in html

    remote = tmp_path / "remote"
    _dvc(project, "remote", "add", "-d", "local", str(remote))
    _dvc(project, "push")
    assert sum(1 for p in remote.rglob("*") if p.is_file()) > 10
    shutil.rmtree(out / "bundle")
    shutil.rmtree(data)
    _dvc(project, "pull")
    assert Bundle.load(out / "bundle").load_head().kind == "fine-tuned"
    assert len(list(data.glob("*/*.jpg"))) == 16
