"""Kubernetes: `kustomize build` of every kustomization under k8s/, piped into
`kubeconform -strict` (Kubernetes schemas from kubernetes-validate, CRD schemas from
k8s/schemas/crds), then harclip's own policy on what was built."""

from __future__ import annotations

import functools
import json
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from harclip.config import KafkaSettings, Settings
from harclip.io.topics import topic_specs
from infra.validate.tools import K8S_SCHEMAS, run, tool

Doc = dict[str, Any]
WORKLOADS = ("Deployment", "StatefulSet", "DaemonSet")
APPS = {"worker": "metrics", "api": "http", "stream": "metrics"}  # component -> probe port name
INPUT_TOPICS = ("frames", "uploads")  # what the workers consume (KEDA triggers)


def kustomizations(root: Path) -> list[Path]:
    """Every folder under k8s/ with a kustomization.yaml (base, overlays, training, argocd)."""
    return sorted(
        p.parent
        for p in (root / "k8s").rglob("kustomization.yaml")
        if yaml.safe_load(p.read_text()).get("kind") != "Component"  # built by the overlays
    )


@functools.lru_cache(maxsize=64)
def build(folder: Path) -> tuple[str, list[str]]:
    """`kustomize build` output, or the error (once per folder and run: several checks read it)."""
    code, out = run([tool("kustomize"), "build", str(folder)])
    return (out, []) if code == 0 else ("", [f"kustomize build {folder}: {out}"])


def load_docs(text: str) -> list[Doc]:
    """The objects of a multi-document YAML text."""
    return [d for d in yaml.safe_load_all(text) if d]


def kubeconform(root: Path, files: list[Path]) -> list[str]:
    """Strict schema validation of every built file in one run (schemas are compiled once); every
    kind needs a schema (none is skipped)."""
    crds = root / "k8s" / "schemas" / "crds"
    if not K8S_SCHEMAS.is_dir():
        return [f"Kubernetes schemas missing at {K8S_SCHEMAS}: run `make tools`"]
    code, out = run(
        [
            tool("kubeconform"), "-strict", "-summary", "-output", "text",
            "-schema-location", f"{K8S_SCHEMAS}/{{{{.ResourceKind}}}}{{{{.KindSuffix}}}}.json",
            "-schema-location",
            f"{crds}/{{{{.Group}}}}/{{{{.ResourceKind}}}}_{{{{.ResourceAPIVersion}}}}.json",
            *map(str, files),
        ]
    )  # fmt: skip
    return [] if code == 0 else [f"kubeconform: {out}"]


def check(root: Path) -> list[str]:
    problems: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        files: list[Path] = []
        for folder in kustomizations(root):
            name = str(folder.relative_to(root))
            out, errors = build(folder)
            problems += errors
            if errors:
                continue
            files.append(Path(tmp) / (name.replace("/", "_") + ".yaml"))
            files[-1].write_text(out)
            docs = load_docs(out)
            problems += [f"{name}: {p}" for p in policy(docs)]
        if files:
            problems += kubeconform(root, files)
    return problems


# ----------------------------------------------------------------------------- policy


def policy(docs: list[Doc]) -> list[str]:
    """harclip's rules for one built kustomization (pure, for tests)."""
    problems: list[str] = []
    for doc in docs:
        if doc["kind"] in WORKLOADS:
            problems += _workload(doc)
        if doc["kind"] == "PyTorchJob":
            for role, spec in doc["spec"]["pytorchReplicaSpecs"].items():
                problems += _pod(f"PyTorchJob/{doc['metadata']['name']}/{role}",
                                 spec["template"]["spec"], probes=False)  # fmt: skip
    if any(_component(d) in APPS for d in docs if d["kind"] == "Deployment"):
        problems += _apps(docs)
    return problems


def _component(doc: Doc) -> str | None:
    labels = doc.get("metadata", {}).get("labels", {})
    return labels.get("app.kubernetes.io/component") if labels.get(
        "app.kubernetes.io/name") == "harclip" else None  # fmt: skip


def _workload(doc: Doc) -> list[str]:
    where = f"{doc['kind']}/{doc['metadata']['name']}"
    pod = doc["spec"]["template"]["spec"]
    problems = _pod(where, pod, probes=True)
    port = APPS.get(_component(doc) or "")
    if port is not None:
        for c in pod["containers"]:
            for probe, path in (("livenessProbe", "/health"), ("readinessProbe", "/ready")):
                get = c.get(probe, {}).get("httpGet", {})
                if get.get("path") != path or get.get("port") != port:
                    problems.append(f"{where}: {c['name']}.{probe} must GET {path} on {port}")
    return problems


def _pod(where: str, pod: Doc, *, probes: bool) -> list[str]:
    problems: list[str] = []
    pod_sc = pod.get("securityContext", {})
    for c in pod.get("initContainers", []) + pod["containers"]:
        at = f"{where}: container {c['name']}"
        sc = c.get("securityContext", {})
        if sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) is not True:
            problems.append(f"{at}: runAsNonRoot is not true")
        if sc.get("runAsUser", pod_sc.get("runAsUser")) == 0:
            problems.append(f"{at}: runs as user 0")
        if sc.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{at}: allowPrivilegeEscalation is not false")
        res = c.get("resources", {})
        missing = [k for k in ("cpu", "memory") if k not in res.get("requests", {})]
        if "memory" not in res.get("limits", {}):
            missing.append("memory limit")
        if missing:
            problems.append(f"{at}: resources lack {', '.join(missing)}")
        if probes and c in pod["containers"]:
            problems += [f"{at}: no {p}" for p in ("livenessProbe", "readinessProbe") if p not in c]
        image = str(c.get("image", ""))
        if ":" not in image.rsplit("/", 1)[-1] or image.endswith(":latest"):
            problems.append(f"{at}: image {image!r} is not pinned to a tag")
    return problems


def _by_kind(docs: list[Doc], kind: str) -> Iterator[Doc]:
    return (d for d in docs if d["kind"] == kind)


def _config(docs: list[Doc]) -> dict[str, str]:
    maps = [d for d in _by_kind(docs, "ConfigMap") if d["metadata"]["name"].startswith(
        "harclip-config")]  # fmt: skip
    return dict(maps[0].get("data", {})) if len(maps) == 1 else {}


def kafka_settings(config: dict[str, str]) -> KafkaSettings:
    """harclip's Kafka section as the deployables will read it from the ConfigMap."""
    prefix = "HARCLIP_KAFKA__"
    fields = {k[len(prefix) :].lower(): v for k, v in config.items() if k.startswith(prefix)}
    return KafkaSettings.model_validate(fields)


def settings_problems(config: dict[str, str]) -> list[str]:
    """The ConfigMap's HARCLIP_* values are valid harclip settings (the deployables would refuse
    to start otherwise). API keys live in the Secret, so a stand-in key satisfies the auth check."""
    nested: dict[str, Any] = {"auth": {"keys": {"stand-in": "admin"}}}
    for key, value in config.items():
        parts = key.removeprefix("HARCLIP_").lower().split("__")
        if not key.startswith("HARCLIP_") or parts[0] == "ui":  # the UI reads its own section
            continue
        node = nested
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = json.loads(value) if value[:1] in "[{" else value
    try:
        Settings(_env_file=None, **nested)
    except ValidationError as e:
        return [f"harclip-config: {err['loc']}: {err['msg']}" for err in e.errors()]
    return []


def _apps(docs: list[Doc]) -> list[str]:
    """Checks of a kustomization that deploys harclip's services."""
    problems: list[str] = []
    config = _config(docs)
    if not config:
        return ["no single harclip-config ConfigMap"]
    problems += settings_problems(config)
    kafka = kafka_settings(config)
    deployments = {_component(d): d for d in _by_kind(docs, "Deployment")}
    for component in APPS:
        if component not in deployments:
            problems.append(f"no Deployment of component {component}")
    # every ConfigMap and Secret the pods read exists
    names = {(d["kind"], d["metadata"]["name"]) for d in docs}
    for d in deployments.values():
        for c in d["spec"]["template"]["spec"]["containers"]:
            for src in c.get("envFrom", []):
                for kind, key in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
                    if key in src and not src[key].get("optional") and (
                        kind, src[key]["name"]) not in names:  # fmt: skip
                        problems.append(f"{d['metadata']['name']}: {kind} {src[key]['name']} "
                                        "is not in the build")  # fmt: skip
    problems += _topics(docs, kafka)
    problems += _scaling(docs, kafka, deployments)
    for component in APPS:
        if not any(
            d["spec"]["selector"].get("matchLabels", {}).get("app.kubernetes.io/component")
            == component
            for d in _by_kind(docs, "PodDisruptionBudget")
        ):
            problems.append(f"no PodDisruptionBudget for {component}")
    return problems


def _topics(docs: list[Doc], kafka: KafkaSettings) -> list[str]:
    """KafkaTopics = harclip.io.topics.topic_specs of the ConfigMap's Kafka settings (with a
    Kafka in the build: an external one's topics are its operator's, `harclip topics create`)."""
    problems: list[str] = []
    if not any(_by_kind(docs, "Kafka")):
        return problems
    topics = {d["metadata"]["name"]: d["spec"] for d in _by_kind(docs, "KafkaTopic")}
    for spec in topic_specs(kafka):
        got = topics.pop(spec.name, None)
        if got is None:
            problems.append(f"no KafkaTopic {spec.name}")
            continue
        if got.get("partitions") != spec.num_partitions:
            problems.append(f"KafkaTopic {spec.name}: {got.get('partitions')} partitions, harclip "
                            f"config wants {spec.num_partitions}")  # fmt: skip
        if got.get("replicas") != spec.replication_factor:
            problems.append(f"KafkaTopic {spec.name}: {got.get('replicas')} replicas, harclip "
                            f"config wants {spec.replication_factor}")  # fmt: skip
        config = {k: str(v) for k, v in (got.get("config") or {}).items()}
        if config != spec.topic_configs:
            problems.append(f"KafkaTopic {spec.name}: config {config} != harclip's "
                            f"{spec.topic_configs}")  # fmt: skip
    problems += [f"KafkaTopic {name} is not one of harclip's topics" for name in topics]
    brokers = sum(
        d["spec"]["replicas"]
        for d in _by_kind(docs, "KafkaNodePool")
        if "broker" in d["spec"].get("roles", [])
    )
    if brokers < kafka.replication_factor:
        problems.append(f"{brokers} Kafka brokers < replication factor {kafka.replication_factor}")
    return problems


def _scaling(docs: list[Doc], kafka: KafkaSettings, deployments: dict[Any, Doc]) -> list[str]:
    problems: list[str] = []
    worker = deployments.get("worker")
    target = worker["metadata"]["name"] if worker else None
    scaled = [
        d for d in _by_kind(docs, "ScaledObject") if d["spec"]["scaleTargetRef"]["name"] == target
    ]
    if len(scaled) != 1:
        return [*problems, "the worker Deployment needs exactly one KEDA ScaledObject"]
    so = scaled[0]["spec"]
    partitions = {s.name: s.num_partitions for s in topic_specs(kafka)}
    wanted = {getattr(kafka.topics, t) for t in INPUT_TOPICS}
    seen: set[str] = set()
    for trigger in so["triggers"]:
        meta = trigger.get("metadata", {})
        if trigger["type"] != "kafka":
            continue
        seen.add(meta.get("topic"))
        if meta.get("consumerGroup") != kafka.group_id:
            problems.append(f"KEDA trigger {meta.get('topic')}: group {meta.get('consumerGroup')} "
                            f"!= HARCLIP_KAFKA__GROUP_ID {kafka.group_id}")  # fmt: skip
        # the same Service and port as the config's (namespace-qualified: infra.validate.cluster)
        theirs = str(meta.get("bootstrapServers")).split(":")
        if (theirs[0].split(".")[0], theirs[-1]) != (kafka.first_host.split(".")[0],
                                                     str(kafka.first_port)):  # fmt: skip
            problems.append(f"KEDA trigger {meta.get('topic')}: bootstrap "
                            f"{meta.get('bootstrapServers')} is not {kafka.bootstrap}")  # fmt: skip
    if seen != wanted:
        problems.append(f"KEDA triggers cover {sorted(seen)}, want the lag of {sorted(wanted)}")
    cap = min(partitions[t] for t in wanted)
    if so.get("maxReplicaCount", 100) > cap:
        problems.append(f"KEDA maxReplicaCount {so.get('maxReplicaCount')} > {cap} partitions: "
                        "the extra workers would idle")  # fmt: skip
    if worker is not None and worker["spec"].get("replicas", 1) > cap:
        problems.append("worker replicas > partitions")
    api = deployments.get("api")
    if api is not None and not any(
        d["spec"]["scaleTargetRef"]["name"] == api["metadata"]["name"]
        for d in _by_kind(docs, "HorizontalPodAutoscaler")
    ):
        problems.append("no HorizontalPodAutoscaler for the API")
    return problems
