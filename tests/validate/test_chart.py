"""The Helm chart (infra.validate.chart): generated from the overlays and in sync with them, every
values file renders to manifests that pass the overlays' policies, and a rendering with a defect
the policies know is reported."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from infra.validate import chart, k8s
from infra.validate.tools import REPO, MissingTool, run, tool


@pytest.fixture(scope="module")
def helm() -> str:
    try:
        return tool("helm")
    except MissingTool as e:
        pytest.fail(f"{e} (run `make tools`)")


def _render(helm: str, *args: str) -> list[dict[str, object]]:
    code, out = run([helm, "template", "h", str(REPO / chart.CHART), "--namespace", "ns1", *args])
    assert code == 0, out
    return k8s.load_docs(out)


def test_todays_chart_passes(helm: str) -> None:
    assert chart.check(REPO) == []


def test_a_template_edited_by_hand_is_caught(tmp_path: Path) -> None:
    shutil.copytree(REPO / "k8s", tmp_path / "k8s")
    target = tmp_path / chart.CHART / "templates" / "deployment-harclip-api.yaml"
    target.write_text(target.read_text().replace("periodSeconds: 5", "periodSeconds: 50"))
    problems = chart.check(tmp_path)
    assert any("differ from the overlays" in p and "deployment-harclip-api" in p for p in problems)


def test_the_large_values_serve_the_prod_model(tmp_path: Path) -> None:
    shutil.copytree(REPO / "k8s", tmp_path / "k8s")
    large = tmp_path / chart.CHART / "values" / "gpu-large.yaml"
    large.write_text(large.read_text().replace("harclip-har/1", "harclip-har/0"))
    assert any("is not the prod overlay's MODEL_URI" in p for p in chart._served_model(tmp_path))


def test_names_follow_the_release_namespace(helm: str) -> None:
    docs = _render(helm)
    assert {d["metadata"].get("namespace") for d in docs} == {"ns1"}
    so = next(d for d in docs if d["kind"] == "ScaledObject")
    assert so["spec"]["triggers"][0]["metadata"]["bootstrapServers"] == (
        "harclip-kafka-kafka-bootstrap.ns1.svc:9092"
    )


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--set", "kafka.bundled=false", "--set", "kafka.bootstrap=kafka:9092"],
         "does not resolve from KEDA's namespace"),
        (["--set", "model.uri=/models/x"], "MODEL_URI '/models/x' is not one of"),
        (["--set", "image.tag=latest"], "is not pinned to a tag"),
    ],
)  # fmt: skip
def test_values_that_would_break_a_cluster_are_caught(
    helm: str, args: list[str], expected: str
) -> None:
    problems = chart._policies(_render(helm, *args))
    assert any(expected in p for p in problems), problems


def test_precreated_secrets_are_the_operators(helm: str) -> None:
    assert chart._policies(_render(helm, "--set", "externalSecrets.enabled=false")) == []
