"""k8s/base/model_fetch.py, the model-fetch init container of the worker and API pods: it puts a
verified bundle at HARCLIP_MODEL__BUNDLE, or exits non-zero naming the cause and leaves nothing
there. MODEL_URI is a local folder here (mlflow.artifacts reads it as it reads models:/ URIs)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from infra.validate.tools import REPO

SCRIPT = REPO / "k8s" / "base" / "model_fetch.py"


def _fetch(uri: str | None, dest: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HARCLIP_", "MLFLOW_"))}
    env |= {"HARCLIP_MODEL__BUNDLE": str(dest), "HOME": str(dest.parent)}
    if uri is not None:
        env["MODEL_URI"] = uri
    return subprocess.run(
        [sys.executable, str(SCRIPT)], env=env, capture_output=True, text=True, timeout=300,
        check=False,
    )  # fmt: skip


def test_a_bundle_is_fetched_verified_and_put_in_place(tiny_bundle: Path, tmp_path: Path) -> None:
    dest = tmp_path / "models" / "current"
    done = _fetch(str(tiny_bundle), dest)
    assert done.returncode == 0, done.stderr
    assert (dest / "manifest.json").is_file()
    assert (dest / "SOURCE").read_text() == f"{tiny_bundle}\n"
    assert "model-fetch:" in done.stdout and str(dest) in done.stdout
    assert sorted(p.name for p in dest.parent.iterdir()) == ["current"]


def test_a_run_artifact_folder_with_the_bundle_inside_is_accepted(
    tiny_bundle: Path, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    shutil.copytree(tiny_bundle, run / "bundle")  # what `python -m training register` logs
    dest = tmp_path / "models" / "current"
    done = _fetch(str(run), dest)
    assert done.returncode == 0, done.stderr
    assert (dest / "manifest.json").is_file()


def test_a_broken_bundle_is_refused_and_nothing_is_served(
    tiny_bundle: Path, tmp_path: Path
) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(tiny_bundle, broken)
    (broken / "labels.json").unlink()
    dest = tmp_path / "models" / "current"
    done = _fetch(str(broken), dest)
    assert done.returncode == 1
    assert "is not a valid bundle" in done.stderr and "labels" in done.stderr
    assert not dest.exists()


def test_a_folder_without_a_manifest_and_no_uri_are_refused(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "README").write_text("not a bundle")
    dest = tmp_path / "models" / "current"
    done = _fetch(str(empty), dest)
    assert done.returncode == 1 and "holds no manifest.json" in done.stderr
    done = _fetch(None, dest)
    assert done.returncode == 2 and "MODEL_URI is not set" in done.stderr
    assert not dest.exists()
