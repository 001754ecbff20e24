"""The checks of what a cluster, an image build, compose and GitHub would do with the files
(infra.validate.cluster, images, pipelines, and the namespace / Fluent Bit rules): each defect
class found in review, fed back as a small broken input, is reported; today's files pass."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.validate import cluster, images, k8s, kibana, monitoring, pipelines, workloads
from infra.validate.tools import REPO, MissingTool, tool

Docs = list[dict[str, Any]]


def _built(overlay: str) -> Docs:
    try:
        tool("kustomize")
    except MissingTool as e:
        pytest.fail(f"{e} (run `make tools`)")
    out, errors = k8s.build(REPO / "k8s" / overlay)
    assert not errors
    return k8s.load_docs(out)


@pytest.fixture(scope="module")
def prod() -> Docs:
    return _built("overlays/prod")


@pytest.fixture(scope="module")
def dev() -> Docs:
    return _built("overlays/dev")


def _find(docs: Docs, kind: str, name: str) -> dict[str, Any]:
    return next(d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name)


def _pod(docs: Docs, name: str) -> dict[str, Any]:
    spec: dict[str, Any] = _find(docs, "Deployment", name)["spec"]["template"]["spec"]
    return spec


def _container(docs: Docs, name: str) -> dict[str, Any]:
    found: dict[str, Any] = _pod(docs, name)["containers"][0]
    return found


def test_the_overlays_training_and_argocd_pass(prod: Docs, dev: Docs) -> None:
    assert cluster.policy(prod) == []
    assert cluster.policy(dev) == []
    assert cluster.check(REPO) == []


def _short_bootstrap(docs: Docs) -> None:
    trigger = _find(docs, "ScaledObject", "harclip-worker")["spec"]["triggers"][0]
    trigger["metadata"]["bootstrapServers"] = "harclip-kafka-kafka-bootstrap:9092"


def _other_namespace(docs: Docs) -> None:
    trigger = _find(docs, "ScaledObject", "harclip-worker")["spec"]["triggers"][0]
    trigger["metadata"]["bootstrapServers"] = "harclip-kafka-kafka-bootstrap.harclip-dev.svc:9092"


def _old_model_volume(docs: Docs) -> None:
    """The claim every worker read: ReadOnlyMany, written by nothing."""
    docs.append({"kind": "PersistentVolumeClaim", "metadata": {"name": "harclip-models"},
                 "spec": {"accessModes": ["ReadOnlyMany"]}})  # fmt: skip
    pod = _pod(docs, "harclip-worker")
    pod.pop("initContainers")
    for v in pod["volumes"]:
        if v["name"] == "models":
            v.pop("emptyDir")
            v["persistentVolumeClaim"] = {"claimName": "harclip-models", "readOnly": True}


def _fetch_writes_nothing(docs: Docs) -> None:
    for m in _pod(docs, "harclip-api")["initContainers"][0]["volumeMounts"]:
        if m["name"] == "models":
            m["readOnly"] = True


def _auth_for_everyone(docs: Docs) -> None:
    config = next(d for d in docs if d["metadata"]["name"].startswith("harclip-config"))
    config["data"]["HARCLIP_AUTH__ENABLED"] = "true"


def _ui_reads_itself(docs: Docs) -> None:
    config = next(d for d in docs if d["metadata"]["name"].startswith("harclip-config"))
    del config["data"]["HARCLIP_UI__WORKER_METRICS_URL"]


def _secret_in_build(docs: Docs) -> None:
    docs.append({"kind": "Secret", "metadata": {"name": "harclip-secrets"},
                 "stringData": {"HARCLIP_AUTH__KEYS": "{}"}})  # fmt: skip


def _key_nobody_makes(docs: Docs) -> None:
    env = _container(docs, "harclip-api")["env"]
    ref = next(e for e in env if e["name"] == "HARCLIP_AUTH__KEYS")["valueFrom"]["secretKeyRef"]
    ref["name"] = "harclip-secrets"


def _no_tls(docs: Docs) -> None:
    _find(docs, "Ingress", "harclip-api")["spec"].pop("tls")


def _public_ui(docs: Docs) -> None:
    annotations = _find(docs, "Ingress", "harclip-ui")["metadata"]["annotations"]
    annotations.pop("nginx.ingress.kubernetes.io/auth-url")


def _auth_off_api(docs: Docs) -> None:
    env = _container(docs, "harclip-api")["env"]
    env[:] = [e for e in env if e["name"] not in ("HARCLIP_AUTH__ENABLED", "FORWARDED_ALLOW_IPS")]


def _open_listener(docs: Docs) -> None:
    _find(docs, "Kafka", "harclip-kafka")["spec"]["kafka"]["listeners"][0].pop("networkPolicyPeers")


def _gpu_surge(docs: Docs) -> None:
    worker = _find(docs, "Deployment", "harclip-worker")
    worker["spec"]["strategy"]["rollingUpdate"]["maxSurge"] = 1
    worker["spec"]["template"]["spec"].pop("tolerations")


def _threads_from_node(docs: Docs) -> None:
    env = _container(docs, "harclip-worker")["env"]
    env[:] = [e for e in env if e["name"] != "HARCLIP_MODEL__INTRA_OP_THREADS"]


def _worker_writes_control(docs: Docs) -> None:
    acls = _find(docs, "KafkaUser", "harclip-worker")["spec"]["authorization"]["acls"]
    acls.append({"resource": {"type": "topic", "name": "harclip.", "patternType": "prefix"},
                 "operations": ["Write"]})  # fmt: skip


def _worker_unauthenticated(docs: Docs) -> None:
    env = _container(docs, "harclip-worker")["env"]
    env[:] = [e for e in env if not e["name"].startswith("HARCLIP_KAFKA__")]


def _ready_follows_redis(docs: Docs) -> None:
    config = next(d for d in docs if d["metadata"]["name"].startswith("harclip-config"))
    config["data"].pop("HARCLIP_API__READY_REQUIRES")


def _model_from_a_path(docs: Docs) -> None:
    model = next(d for d in docs if d["metadata"]["name"].startswith("harclip-model"))
    model["data"]["MODEL_URI"] = "/models/harclip-har"


def _s3_model_without_keys(docs: Docs) -> None:
    model = next(d for d in docs if d["metadata"]["name"].startswith("harclip-model"))
    model["data"]["MODEL_URI"] = "s3://harclip-models/harclip-har/3"
    init = _pod(docs, "harclip-worker")["initContainers"][0]
    init["env"] = [e for e in init["env"] if not e["name"].startswith("HARCLIP_OBJECTS__")]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda d: next(x for x in d if x["metadata"]["name"].startswith("harclip-config"))[
            "data"].pop("HARCLIP_API__PUBLIC_URL"), "HARCLIP_API__PUBLIC_URL http://127.0.0.1:8000"),
        (lambda d: _find(d, "Kafka", "harclip-kafka")["spec"]["kafka"]["listeners"][0].pop(
            "authentication"), "listener plain has no authentication"),
        (lambda d: _find(d, "Kafka", "harclip-kafka")["spec"]["kafka"].pop("authorization"),
         "no `authorization: simple`"),
        (_worker_writes_control, "KafkaUser/harclip-worker: may write harclip.control"),
        (_worker_unauthenticated, "Deployment/harclip-worker: container worker talks to Kafka "
         "unauthenticated"),
        (lambda d: _find(d, "ScaledObject", "harclip-worker")["spec"]["triggers"][0].pop(
            "authenticationRef"), "KEDA cannot log in"),
        (lambda d: _container(d, "harclip-api")["env"].append(
            {"name": "HARCLIP_REDIS__URL", "value": "redis://:pw@harclip-redis:6379/0"}),
         "HARCLIP_REDIS__URL carries a password"),
        (_ready_follows_redis, "readiness requires a single-replica Redis"),
        (_model_from_a_path, "MODEL_URI '/models/harclip-har' is not one of"),
        (_s3_model_without_keys, "without the object store's keys"),
        (_short_bootstrap, "does not resolve from KEDA's namespace"),
        (_other_namespace, "names namespace harclip-dev, the workers run in harclip"),
        (lambda d: _find(d, "ScaledObject", "harclip-worker")["spec"]["triggers"][0]["metadata"]
         .update(offsetResetPolicy="latest"), "the workers start from 'earliest'"),
        (lambda d: _find(d, "ScaledObject", "harclip-worker")["spec"].pop("fallback"),
         "no fallback"),
        (lambda d: _find(d, "Deployment", "harclip-worker")["spec"].update(replicas=1),
         "Deployment/harclip-worker: sets replicas but is scaled by an autoscaler"),
        (lambda d: _find(d, "Deployment", "harclip-api")["spec"].update(replicas=3),
         "Deployment/harclip-api: sets replicas"),
        (_old_model_volume, "reads claim harclip-models, which no pod of the build writes"),
        (_old_model_volume, "ReadOnlyMany only"),
        (_fetch_writes_nothing, "reads emptyDir models, which no init container writes"),
        (_auth_for_everyone, "CronJob/harclip-retention: container retention: its settings fail: "
         "settings: Value error, auth.enabled is true but auth.keys is empty"),
        (_ui_reads_itself, "Deployment/harclip-ui: container ui: its settings fail: "
         "ui.worker_metrics_url is http://127.0.0.1:9300/metrics: the pod itself"),
        (_secret_in_build, "Secret/harclip-secrets: a Secret with data in the manifests"),
        (_key_nobody_makes, "reads key keys of Secret harclip-secrets, which the build neither"),
        (_no_tls, "host api.harclip.example.com is served without TLS"),
        (_public_ui, "publishes the UI without a sign-in"),
        (_auth_off_api, "published by an Ingress with auth off"),
        (_auth_off_api, "without FORWARDED_ALLOW_IPS"),
        (_open_listener, "listener plain has no networkPolicyPeers"),
        (lambda d: _find(d, "Kafka", "harclip-kafka")["spec"].pop("kafkaExporter"),
         "no kafkaExporter"),
        (_gpu_surge, "GPU pods with maxSurge 1"),
        (_gpu_surge, "without tolerating its taint"),
        (_threads_from_node, "HARCLIP_MODEL__INTRA_OP_THREADS does not follow limits.cpu"),
    ],
)  # fmt: skip
def test_the_cluster_policy_catches(
    prod: Docs, change: Callable[[Docs], object], expected: str
) -> None:
    docs = copy.deepcopy(prod)
    change(docs)
    problems = cluster.policy(docs)
    assert any(expected in p for p in problems), problems


def test_the_dev_overlay_publishes_no_auth_off_api(dev: Docs) -> None:
    docs = copy.deepcopy(dev)
    _auth_off_api(docs)
    assert any("auth off" in p for p in cluster.policy(docs))


def test_argocd_needs_respect_ignore_differences() -> None:
    docs = _built("argocd")
    assert cluster.argocd_sync(docs) == []
    for app in docs:
        if app["kind"] == "Application":
            options = app["spec"].get("syncPolicy", {}).get("syncOptions", [])
            if "RespectIgnoreDifferences=true" in options:
                options.remove("RespectIgnoreDifferences=true")
    problems = cluster.argocd_sync(docs)
    assert any("Application/harclip-prod: ignoreDifferences without" in p for p in problems)


def test_each_workloads_env_is_loaded_as_settings() -> None:
    assert workloads.settings_errors({"HARCLIP_KAFKA__PARTITIONS": "3"}) == []
    errors = workloads.settings_errors({"HARCLIP_AUTH__ENABLED": "true"})
    assert any("auth.keys is empty" in e for e in errors)
    assert workloads.settings_errors({"HARCLIP_AUTH__ENABLED": "true",
                                    "HARCLIP_AUTH__KEYS": '{"k": "admin"}'}) == []  # fmt: skip


# ----------------------------------------------------------------------------- images


def test_todays_images_locks_and_compose_pass() -> None:
    assert images.check(REPO) == []


def test_a_lock_without_hashes_is_caught() -> None:
    assert images.lock_problems("numpy==2.4.6 \\\n    --hash=sha256:" + "a" * 64 + "\n") == []
    problems = images.lock_problems("numpy==2.4.6\n    # via harclip\nrich>=13\n")
    assert problems == ["numpy==2.4.6: no --hash (lock with `uv pip compile --generate-hashes`)",
                        "rich>=13: not pinned with =="]  # fmt: skip


def test_dockerfile_pins_and_bases_are_caught() -> None:
    text = (
        "ARG CUDA_IMAGE=nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04\n"
        "FROM ghcr.io/astral-sh/uv:0.9.5 AS uv\n"
        "FROM ${CUDA_IMAGE} AS build\n"
        "RUN uv pip install --python /opt/venv/bin/python --require-hashes -r worker-gpu.lock\n"
        "RUN uv pip install --python /opt/venv/bin/python \\\n"
        '        "onnxruntime-gpu==1.32.0" "cuda-python~=12.9"\n'
        "RUN uv pip install --python /opt/venv/bin/python --no-deps .\n"
        "FROM build\n"
    )
    assert images.dockerfile_problems(text) == [
        "FROM ghcr.io/astral-sh/uv:0.9.5: pin it by digest, or make it a build argument with a "
        "pinned default",
        "installs without --require-hashes: uv pip install --python /opt/venv/bin/python "
        '"onnxruntime-gpu==1.32.0" "cuda-python~=12.9"',
        "pins onnxruntime-gpu==1.32.0 outside a hashed lock (add it to a lock: docs/deploy.md, "
        '"Images")',
        'pins cuda-python~=12.9 outside a hashed lock (add it to a lock: docs/deploy.md, "Images")',
    ]
    assert images.dockerfile_problems("ARG B=python:latest\nFROM ${B}\n") == [
        "FROM ${B}: default python:latest not pinned"
    ]
    assert images.dockerfile_problems("FROM python@sha256:" + "0" * 64 + "\n") == []


def test_a_volume_the_image_does_not_own_is_caught(tmp_path: Path) -> None:
    (tmp_path / "train.Dockerfile").write_text(
        "FROM python:3.11 AS build\nRUN mkdir -p /models && chown 10001 /models\n"
        "FROM python:3.11\nRUN useradd harclip\nUSER 10001:10001\n"
    )
    doc = {
        "services": {"model-init": {"build": {"context": ".", "dockerfile": "train.Dockerfile"},
                                    "user": "10001:10001", "volumes": ["models:/models"]},
                     "worker": {"build": {"context": ".", "dockerfile": "train.Dockerfile"},
                                "volumes": ["models:/models:ro"]}},
        "volumes": {"models": None},
    }  # fmt: skip
    problems = images.volume_owners(doc, tmp_path)
    assert problems == ["model-init: writes volume models at /models as user 10001, but "
                        "train.Dockerfile does not create /models owned by it (a new volume is "
                        "root's)"]  # fmt: skip
    (tmp_path / "train.Dockerfile").write_text(
        "FROM python:3.11\nRUN mkdir -p /models && chown harclip:harclip /models\nUSER 10001\n"
    )
    assert images.volume_owners(doc, tmp_path) == []


# ----------------------------------------------------------------------------- workflows


def _flows() -> dict[str, dict[str, Any]]:
    return {
        f.name: yaml.load(f.read_text(), Loader=yaml.BaseLoader)
        for f in sorted((REPO / pipelines.WORKFLOWS).glob("*.yml"))
    }


def test_todays_workflows_pass() -> None:
    assert pipelines.policy(_flows()) == []


def test_workflow_defects_are_caught() -> None:
    flows = _flows()
    flows["deploy.yml"]["on"]["workflow_run"]["branches"] = ["main"]
    flows["deploy.yml"]["jobs"]["promote"]["steps"].append({"run": "git push origin HEAD:main"})
    retrain = flows["retrain.yml"]["jobs"]["retrain"]["steps"]
    next(s for s in retrain if "uses" in s and s["uses"].startswith(pipelines.OPENS_PR))[
        "with"
    ].pop("token")
    flows["model-eval.yml"]["on"]["pull_request"]["paths"].remove(pipelines.SERVED_MODEL)
    problems = "\n".join(pipelines.policy(flows))
    assert "deploy.yml: job promote waits for a v* tag, but workflow_run.branches" in problems
    assert "deploy.yml: job promote: `git push` from a workflow" in problems
    assert "retrain.yml: job retrain: a pull request opened with GITHUB_TOKEN" in problems
    assert "model-eval.yml: pull_request.paths leave out k8s/overlays/prod" in problems


# ----------------------------------------------------------------------------- monitoring


def test_rules_aggregate_by_namespace() -> None:
    rules = yaml.safe_load((REPO / monitoring.RULES).read_text())
    assert monitoring.namespace_problems(rules) == []
    broken = {"groups": [{"rules": [
        {"record": "a", "expr": "sum by (topic) (harclip_consumer_lag)"},
        {"alert": "B", "expr": "sum(rate(harclip_frames_failed_total[5m])) > 0"},
        {"alert": "C", "expr": "max by (Hostname) (DCGM_FI_DEV_FB_USED)"},
    ]}]}  # fmt: skip
    assert monitoring.namespace_problems(broken) == [
        "a: `sum by (topic) (` aggregates across namespaces",
        "B: `sum(` aggregates across namespaces",
    ]


def test_fluent_bit_keeps_each_namespace_apart() -> None:
    config = yaml.safe_load((REPO / kibana.FLUENT_BIT).read_text())
    assert kibana.fluent_bit_routes(config) == []
    dev_output = config["pipeline"]["outputs"][1]
    dev_output["host"] = "harclip-es-http.harclip.svc"
    dev_output["http_user"] = "elastic"
    problems = kibana.fluent_bit_routes(config)
    assert any("logs in as 'elastic'" in p for p in problems)
    assert any("writes the logs of namespace harclip-dev into another" in p for p in problems)


def test_the_gpu_base_and_onnxruntime_gpu_agree_on_cuda() -> None:
    base = "ARG CUDA_IMAGE=nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04\n"
    assert images.gpu_cuda_problems(base, "onnxruntime-gpu==1.26.0 \\\n") == []
    assert images.gpu_cuda_problems(base, "onnxruntime-gpu==1.32.0 \\\n") == [
        "infra/docker/worker-gpu.lock: onnxruntime-gpu 1.32 is built for CUDA 13, the base "
        "nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04 is CUDA 12"
    ]
    cuda13 = "ARG CUDA_IMAGE=nvidia/cuda:13.0.2-cudnn-runtime-ubuntu24.04\n"
    assert images.gpu_cuda_problems(cuda13, "onnxruntime-gpu==1.31.1 \\\n") == []
