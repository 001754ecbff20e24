"""`push`: the dry run writes the model card and lists the files; without a token, or without a
reachable hub, it stops at once with one line (a subprocess, so no token of this machine's
user is seen)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from training.cli import main

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def bundle(tiny_bundle: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(tiny_bundle, tmp_path / "bundle"))


def test_dry_run_writes_the_card_and_lists_files(
    bundle: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["push", "--bundle", str(bundle), "--repo-id", "org/har", "--dry-run"]) == 0
    out = capsys.readouterr().out
    card = (bundle / "README.md").read_text()
    for section in ("## Metrics", "## Labels", "## Data", "## Training", "## Intended use",
                    "## Limits"):  # fmt: skip
        assert section in card
    assert "`using_laptop`" in card and "pipeline_tag: image-classification" in card
    assert "would upload" in out and "encoder.onnx" in out and "README.md" in out


def _push(bundle: Path, tmp_path: Path, *extra: str, token: str | None) -> tuple[int, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING"))}
    env |= {"HF_HOME": str(tmp_path / "hf-home"), "PYTHONPATH": str(ROOT)}
    if token:
        env["HF_TOKEN"] = token
    proc = subprocess.run(
        [sys.executable, "-m", "training", "push", "--bundle", str(bundle), "--repo-id",
         "org/har", *extra],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    return proc.returncode, proc.stderr.strip()


def test_no_token_or_no_network_fails_in_one_line(bundle: Path, tmp_path: Path) -> None:
    code, err = _push(bundle, tmp_path, token=None)
    assert code == 2 and err.startswith("training push: error: no Hugging Face token")
    assert "\n" not in err
    code, err = _push(bundle, tmp_path, "--endpoint", "http://127.0.0.1:9", token="hf_x")
    assert code == 2 and "cannot reach the Hugging Face hub at http://127.0.0.1:9" in err
    assert "\n" not in err


def test_bad_repo_id(bundle: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["push", "--bundle", str(bundle), "--repo-id", "nope", "--dry-run"]) == 2
    assert "ORG/NAME" in capsys.readouterr().err
