"""`python -m infra.validate` fails on a deliberately broken copy of the deployment files, check by
check, and names what is broken; the pure parts (manifest policy, PromQL metric names, Kibana
references) on small inputs."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.validate import k8s, kibana, monitoring
from infra.validate.tools import REPO, MissingTool, tool

_COPIED = ("k8s", "infra", ".github", "requirements.lock")


def _needs(*tools: str) -> None:
    for name in tools:
        try:
            tool(name)
        except MissingTool as e:  # `make test` builds every tool first (`make tools`)
            pytest.fail(f"{e} (run `make tools`)")


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pristine")
    for name in _COPIED:
        if (REPO / name).is_file():
            shutil.copy(REPO / name, root / name)
            continue
        shutil.copytree(REPO / name, root / name, ignore=shutil.ignore_patterns("__pycache__"))
    return root


def _validate(root: Path, *checks: str) -> tuple[int, str]:
    done = subprocess.run(
        [sys.executable, "-m", "infra.validate", "--root", str(root), "--only", *checks],
        capture_output=True, text=True, cwd=REPO, timeout=600, check=False,
    )  # fmt: skip
    return done.returncode, done.stdout + done.stderr


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


def _broken_k8s(root: Path) -> None:
    # a misspelt field (schema, strict), topics that disagree with harclip's config (policy)
    _edit(root / "k8s/base/api.yaml", "  revisionHistoryLimit: 3", "  revisionHistoryLimt: 3")
    _edit(root / "k8s/overlays/dev/kustomization.yaml", "HARCLIP_KAFKA__PARTITIONS=3",
          "HARCLIP_KAFKA__PARTITIONS=4")  # fmt: skip


def _broken_rules(root: Path) -> None:
    _edit(root / "infra/monitoring/prometheus/rules.yml", "harclip:frames_dropped:ratio5m > 0.05",
          "harclip:frames_dropped:ratio5m > 0.5")  # fmt: skip


def _broken_dashboards(root: Path) -> None:
    path = root / "infra/monitoring/grafana/dashboards/harclip-worker.json"
    _edit(path, "harclip_frames_dropped_total", "harclip_frames_lost_total")
    _edit(path, "harclip:label_share:rate1h", "harclip:label_share:rate1h)")


def _broken_kibana(root: Path) -> None:
    path = root / "infra/kibana/saved-objects.ndjson"
    _edit(
        path,
        '{"id": "harclip-alerts", "name": "panel_0"',
        '{"id": "harclip-alert", "name": "panel_0"',
    )
    _edit(path, '["stream_id", "rule", "severity"', '["stream_id", "rules", "severity"')


def _broken_compose(root: Path) -> None:
    _edit(root / "infra/docker-compose.yml", "    restart: unless-stopped\n",
          "    restart: unless-stopped\n    restarts: 3\n")  # fmt: skip
    _edit(
        root / "infra/docker-compose.yml",
        "      - models:/models:ro\n",
        "      - model:/models:ro\n",
    )


def _broken_docker(root: Path) -> None:
    _edit(root / "infra/docker/api.Dockerfile", "WORKDIR /app\n", "RUN cd /app\n")


def _broken_workflows(root: Path) -> None:
    _edit(root / ".github/workflows/ci.yml", "runs-on: ubuntu-24.04", "runs-on: ${{ matrix.os }}")


def _broken_cluster(root: Path) -> None:
    # KEDA's replica count reset by every sync; auth for every pod (the retention job has no keys)
    _edit(root / "k8s/base/worker.yaml", "spec:\n  revisionHistoryLimit: 3",
          "spec:\n  replicas: 1\n  revisionHistoryLimit: 3")  # fmt: skip
    _edit(root / "k8s/base/kustomization.yaml", "      - HARCLIP_LOG_LEVEL=INFO\n",
          "      - HARCLIP_LOG_LEVEL=INFO\n      - HARCLIP_AUTH__ENABLED=true\n")  # fmt: skip


def _broken_images(root: Path) -> None:
    _edit(root / "infra/docker/api.Dockerfile", "--require-hashes ", "")


def _broken_pipelines(root: Path) -> None:
    token = "          token: ${{ steps.app.outputs.token }}\n"
    _edit(root / ".github/workflows/retrain.yml", token, "")


BREAKS: dict[str, tuple[Callable[[Path], None], tuple[str, ...], list[str]]] = {
    "k8s": (_broken_k8s, ("kustomize", "kubeconform"),
            ["revisionHistoryLimt", "harclip config wants 4"]),
    "rules": (_broken_rules, ("promtool",),
              ["HarclipFramesDropped", "differs from infra/monitoring/prometheus/rules.yml"]),
    "dashboards": (_broken_dashboards, ("promtool",),
                   ["harclip_frames_lost_total", "does not parse"]),
    "kibana": (_broken_kibana, (), ["'harclip-alert' is not in the file", "field 'rules'"]),
    "compose": (_broken_compose, (), ["'restarts' does not match"]),
    "docker": (_broken_docker, ("hadolint",), ["DL3003"]),
    "workflows": (_broken_workflows, ("actionlint",), ["matrix"]),
    "cluster": (_broken_cluster, ("kustomize",),
                ["Deployment/harclip-worker: sets replicas but is scaled by an autoscaler",
                 "CronJob/harclip-retention: container retention: its settings fail"]),
    "images": (_broken_images, (), ["api.Dockerfile: installs without --require-hashes"]),
    "pipelines": (_broken_pipelines, (), ["retrain.yml: job retrain: a pull request opened with "
                                          "GITHUB_TOKEN starts no workflows"]),
}  # fmt: skip


@pytest.mark.parametrize("check", sorted(BREAKS))
def test_a_broken_copy_fails_and_says_what_is_broken(
    check: str, pristine: Path, tmp_path: Path
) -> None:
    breaker, tools, expected = BREAKS[check]
    _needs(*tools)
    root = tmp_path / "repo"
    shutil.copytree(pristine, root)
    breaker(root)
    code, out = _validate(root, check)
    assert code == 1, out
    assert f"FAIL {check}" in out
    for text in expected:
        assert text in out, out


# ----------------------------------------------------------------------------- pure parts


def _prod_docs() -> list[dict[str, Any]]:
    _needs("kustomize")
    out, errors = k8s.build(REPO / "k8s" / "overlays" / "prod")
    assert not errors
    return [d for d in yaml.safe_load_all(out) if d]


@pytest.fixture(scope="module")
def prod() -> list[dict[str, Any]]:
    return _prod_docs()


def _find(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    return next(d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name)


def test_the_prod_overlay_passes_the_policy(prod: list[dict[str, Any]]) -> None:
    assert k8s.policy(prod) == []
    worker = _find(prod, "Deployment", "harclip-worker")["spec"]["template"]["spec"]
    assert worker["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert _find(prod, "ScaledObject", "harclip-worker")["spec"]["maxReplicaCount"] == 24


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda d: _pod(d, "harclip-api")["containers"][0].pop("readinessProbe"),
         "no readinessProbe"),
        (lambda d: _pod(d, "harclip-worker")["securityContext"].update(runAsNonRoot=False),
         "runAsNonRoot is not true"),
        (lambda d: _pod(d, "harclip-stream")["containers"][0]["resources"].pop("limits"),
         "resources lack memory limit"),
        (lambda d: _pod(d, "harclip-ui")["containers"][0].update(image="harclip-ui:latest"),
         "is not pinned"),
        (lambda d: _find(d, "KafkaTopic", "harclip.control")["spec"]["config"].pop(
            "cleanup.policy"), "harclip.control: config"),
        (lambda d: _find(d, "KafkaTopic", "harclip.uploads")["spec"].update(partitions=12),
         "12 partitions, harclip config wants 24"),
        (lambda d: _find(d, "ScaledObject", "harclip-worker")["spec"].update(maxReplicaCount=30),
         "maxReplicaCount 30 > 24 partitions"),
        (lambda d: _find(d, "ScaledObject", "harclip-worker")["spec"]["triggers"].pop(),
         "want the lag of"),
        (lambda d: d.remove(_find(d, "HorizontalPodAutoscaler", "harclip-api")),
         "no HorizontalPodAutoscaler for the API"),
        (lambda d: _pod(d, "harclip-worker")["containers"][0]["livenessProbe"]["httpGet"].update(
            path="/ready"), "livenessProbe must GET /health"),
    ],
)  # fmt: skip
def test_the_policy_catches(
    prod: list[dict[str, Any]], change: Callable[[list[dict[str, Any]]], object], expected: str
) -> None:
    docs = copy.deepcopy(prod)
    change(docs)
    problems = k8s.policy(docs)
    assert any(expected in p for p in problems), problems


def _pod(docs: list[dict[str, Any]], name: str) -> dict[str, Any]:
    spec: dict[str, Any] = _find(docs, "Deployment", name)["spec"]["template"]["spec"]
    return spec


def test_a_bad_setting_in_the_configmap_is_caught() -> None:
    assert k8s.settings_problems({"HARCLIP_KAFKA__PARTITIONS": "0"})
    assert k8s.settings_problems({"HARCLIP_API__ALLOWED_HOSTS": '["*"]'}) == []


def test_metric_names_are_read_from_promql() -> None:
    expr = (
        'sum by (le) (rate(harclip_e2e_latency_seconds_bucket{job="a:b"}[5m])) / ignoring(label)'
        " group_left sum(increase(x_total[7d] offset 1h)) > 1e-9 and on (pod) up == bool 1"
    )
    assert monitoring.metric_names(expr) == {"harclip_e2e_latency_seconds_bucket", "x_total", "up"}
    exported = monitoring.exported_metrics()
    assert "harclip_predicted_labels" in exported and "harclip_http_requests" in exported
    names = {"harclip_frames_consumed_total", "DCGM_FI_DEV_FB_USED", "harclip_nope_total"}
    assert monitoring.unknown_metrics(names, exported) == {"harclip_nope_total"}


def test_kibana_objects_with_a_dangling_reference_or_duplicate_id_are_caught() -> None:
    lines = (REPO / kibana.SAVED_OBJECTS).read_text().splitlines()
    objects = [json.loads(line) for line in lines]
    assert kibana.check_objects(objects) == []
    broken = [*objects, copy.deepcopy(objects[0])]
    broken[3]["references"][0]["id"] = "harclip-nowhere"
    problems = kibana.check_objects(broken)
    assert any("used twice" in p for p in problems)
    assert any("'harclip-nowhere' is not in the file" in p for p in problems)


def test_kibana_evidence_links_read_mapped_fields_and_link_the_api() -> None:
    lines = (REPO / kibana.SAVED_OBJECTS).read_text().splitlines()
    objects = [json.loads(line) for line in lines]
    events = next(o for o in objects if o["id"] == "harclip-events")
    formats = json.loads(events["attributes"]["fieldFormatMap"])
    assert formats["snapshot_url"]["params"]["urlTemplate"].endswith("/events/{{value}}/snapshot")
    assert formats["clip_url"]["params"]["urlTemplate"].endswith("/events/{{value}}/clip")
    broken = copy.deepcopy(objects)
    view = next(o for o in broken if o["id"] == "harclip-events")["attributes"]
    view["runtimeFieldMap"] = view["runtimeFieldMap"].replace("evidence.clip", "evidence.nope")
    view["fieldFormatMap"] = json.dumps(formats | {"nowhere": formats["clip_url"]})
    problems = kibana.check_objects(broken)
    assert any("reads 'evidence.nope'" in p for p in problems)
    assert any("field format of 'nowhere'" in p for p in problems)
