"""The MLflow model registry: the first bundle becomes `champion`; a better one on the same test
split takes the alias; a worse one stays `candidate` with the reason; on another split the
champion's bundle is downloaded and judged on that split.

The bundles are the tiny one with constant heads (always "calling", always "cycling") and the
data an imbalanced CSV (calling 12 photos, the others 4), so which one wins is known."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from harclip.model.bundle import Bundle
from harclip.model.head import Head
from tests.support.training import CLASSES, run_cli


def _constant_bundle(src: Path, dst: Path, label: str) -> Path:
    shutil.copytree(src, dst)
    b = Bundle.load(dst)
    c = len(CLASSES)
    bias = np.where(np.array(CLASSES) == label, 10.0, 0.0).astype(np.float32)
    b.save_head(Head(labels=CLASSES, weight=np.zeros((b.manifest.embed_dim, c), np.float32),
                     bias=bias, logit_scale=1.0, version=2, kind="fine-tuned"))  # fmt: skip
    return dst


@pytest.fixture
def imbalanced_csv(sample_data: Path, tmp_path: Path) -> Path:
    """A CSV beside its photos (copied: a CSV names files inside its own folder)."""
    root = sample_data / "har-sample"
    counts = {"calling": 12, "cycling": 4, "running": 4, "sitting": 4}
    data = tmp_path / "data"
    rows = ["file,label"]
    for c, n in counts.items():
        (data / c).mkdir(parents=True)
        for p in sorted((root / c).glob("*.jpg"))[:n]:
            shutil.copyfile(p, data / c / p.name)
            rows.append(f"{c}/{p.name},{c}")
    csv = data / "labels.csv"
    csv.write_text("\n".join(rows) + "\n")
    return csv


def test_champion_only_when_better_on_the_same_split(
    tiny_bundle: Path, imbalanced_csv: Path, tmp_path: Path
) -> None:
    from mlflow import MlflowClient

    calling = _constant_bundle(tiny_bundle, tmp_path / "calling", "calling")  # test acc 3/6
    cycling = _constant_bundle(tiny_bundle, tmp_path / "cycling", "cycling")  # test acc 1/6
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"

    def register(bundle: Path, out: str, *extra: str) -> None:
        run_cli(["register", "--data", str(imbalanced_csv), "--bundle", str(bundle),
                 "--output", str(tmp_path / out), "--mlflow-uri", uri, "--quiet",
                 "--set", "data.val_fraction=0", "--set", "data.test_fraction=0.25",
                 "--set", "data.workers=0", *extra])  # fmt: skip

    client = MlflowClient(tracking_uri=uri)

    def alias(version: str) -> tuple[list[str], str]:
        mv = client.get_model_version("harclip-har", version)
        return list(mv.aliases), mv.tags["decision"]

    register(cycling, "run")
    assert alias("1") == (["champion"], "the first registered version")
    register(calling, "run")
    aliases, reason = alias("2")
    assert aliases == ["champion"] and reason.startswith("accuracy 0.5000 > champion v1's 0.1667")
    register(cycling, "run")
    aliases, reason = alias("3")
    assert aliases == ["candidate"]
    assert reason.startswith("not promoted: accuracy 0.1667 <= champion v2's 0.5000 on the same")
    assert list(client.get_model_version("harclip-har", "2").aliases) == ["champion"]

    register(cycling, "other-split", "--set", "data.seed=7")  # the champion is re-judged
    aliases, reason = alias("4")
    assert aliases == ["candidate"] and "champion v2's 0.5000" in reason
