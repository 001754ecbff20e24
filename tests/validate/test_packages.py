"""infra.validate.packages: every pinned package of the locks and Dockerfiles is a name the
package index has (offline, against a list)."""

from __future__ import annotations

from pathlib import Path

from infra.validate import packages
from infra.validate.tools import REPO


def test_the_locks_pins_are_found() -> None:
    found = packages.pins(REPO)
    assert len(found["requirements.lock"]) > 100
    names = {packages.normalize(n) for n, _ in found.get("infra/docker/worker-gpu.lock", [])}
    assert "onnxruntime-gpu" in names


def test_a_name_the_index_lacks_is_caught(tmp_path: Path) -> None:
    listing = tmp_path / "pypi.tsv"
    listing.write_text("name\tversion\nonnxruntime_gpu\t1.26.0\n")
    found = {"x.lock": [("onnxruntime-gpu", "1.26.0"), ("onnxruntime-gpux", "1.0")]}
    problems = packages.problems_against(packages.read_list(listing), found)
    assert problems == ["x.lock: onnxruntime-gpux==1.0: no package onnxruntime-gpux in the index"]
