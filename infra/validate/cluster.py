"""What a real cluster would do with the built manifests, beyond their shape: addresses that other
namespaces' controllers resolve, replica counts owned by autoscalers, volumes nobody writes,
settings each workload's environment would refuse, Secrets a sync would overwrite, published
endpoints without TLS or sign-in, listeners open to every pod, GPU rollouts that need a spare GPU.

`check(root)` builds every kustomization under k8s/ (as the `k8s` check does) and applies
`policy(docs)` to each; `policy` is pure, for tests.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from infra.validate import k8s
from infra.validate.access import api_readiness, kafka_auth, redis_passwords
from infra.validate.workloads import (
    by_kind,
    component_of,
    container_env,
    harclip_image,
    namespace_of,
    pods,
    secrets_in_build,
    where,
    workload_settings,
)

Doc = dict[str, Any]
# KEDA's operator resolves the ScaledObjects' addresses from its own namespace
QUALIFIED = re.compile(
    r"^(?P<svc>[a-z0-9-]+)\.(?P<ns>[a-z0-9-]+)\.svc(\.cluster\.local)?:(?P<port>\d+)$"
)
GPU = "nvidia.com/gpu"
ORT_COMPONENTS = ("worker", "api")  # containers that run ONNX Runtime


def check(root: Path) -> list[str]:
    problems: list[str] = []
    for folder in k8s.kustomizations(root):
        name = str(folder.relative_to(root))
        if name == "k8s/base":  # deployed only through an overlay (with its Secrets' component)
            continue
        out, errors = k8s.build(folder)
        if errors:
            problems += errors
            continue
        problems += [f"{name}: {p}" for p in policy(k8s.load_docs(out))]
    return problems


def policy(docs: list[Doc]) -> list[str]:
    """Every rule of this module on one built kustomization."""
    return [
        *keda_addresses(docs),
        *autoscaled_replicas(docs),
        *volume_writers(docs),
        *workload_settings(docs),
        *secrets_in_build(docs),
        *published(docs),
        *kafka_listeners(docs),
        *argocd_sync(docs),
        *gpu_pods(docs),
        *ort_threads(docs),
        *model_sources(docs),
        *kafka_auth(docs),
        *api_readiness(docs),
        *redis_passwords(docs),
    ]


# ----------------------------------------------------------------------------- addresses


def keda_addresses(docs: list[Doc]) -> list[str]:
    """KEDA's Kafka triggers name the bootstrap Service with its namespace (the scaler runs in
    namespace keda), a Kafka of this build, and read the lag as the workers' consumer does."""
    problems: list[str] = []
    kafkas = {f"{d['metadata']['name']}-kafka-bootstrap": d for d in by_kind(docs, "Kafka")}
    for so in by_kind(docs, "ScaledObject"):
        spec, at = so["spec"], where(so)
        for trigger in spec.get("triggers", []):
            if trigger.get("type") != "kafka":
                continue
            meta = trigger.get("metadata", {})
            for address in str(meta.get("bootstrapServers", "")).split(","):
                m = QUALIFIED.match(address.strip())
                host = address.strip().rpartition(":")[0]
                if m is None and "." in host and ".svc" not in host:
                    continue  # a name outside the cluster (an external Kafka) resolves anywhere
                if m is None:
                    problems.append(
                        f"{at}: bootstrapServers {address!r} does not resolve from "
                        "KEDA's namespace: use <service>.<namespace>.svc:<port>"
                    )
                elif m["ns"] != namespace_of(so):
                    problems.append(
                        f"{at}: bootstrapServers {address!r} names namespace "
                        f"{m['ns']}, the workers run in {namespace_of(so)}"
                    )
                elif kafkas and m["svc"] not in kafkas:
                    problems.append(
                        f"{at}: {m['svc']} is not the bootstrap Service of a Kafka "
                        f"here ({', '.join(sorted(kafkas))})"
                    )
            if meta.get("offsetResetPolicy") != "earliest":
                problems.append(
                    f"{at}: trigger {meta.get('topic')} offsetResetPolicy "
                    f"{meta.get('offsetResetPolicy')!r}: the workers start from "
                    "'earliest'"
                )
        fallback = spec.get("fallback")
        if not fallback:
            problems.append(f"{at}: no fallback (replicas to hold when the lag cannot be read)")
        elif fallback.get("replicas", 0) > spec.get("maxReplicaCount", 100):
            problems.append(f"{at}: fallback replicas > maxReplicaCount")
    return problems


def autoscaled_replicas(docs: list[Doc]) -> list[str]:
    """A Deployment that KEDA or an HPA scales has no `replicas`: every apply would reset it."""
    scaled = {
        d["spec"]["scaleTargetRef"]["name"]
        for d in docs
        if d.get("kind") in ("ScaledObject", "HorizontalPodAutoscaler")
    }
    return [
        f"{where(d)}: sets replicas but is scaled by an autoscaler (a sync resets its count)"
        for d in by_kind(docs, "Deployment")
        if d["metadata"]["name"] in scaled and "replicas" in d["spec"]
    ]


# ----------------------------------------------------------------------------- volumes


def volume_writers(docs: list[Doc]) -> list[str]:
    """Every volume a container reads has a writer: an emptyDir one of the pod's init containers
    fills, a claim that some pod of the build mounts writable and that can bind that way; and the
    model bundle a container is told to load lies on one of its mounts."""
    problems: list[str] = []
    claims = {d["metadata"]["name"]: d for d in by_kind(docs, "PersistentVolumeClaim")}
    written_claims: set[str] = set()
    readers: list[tuple[str, str]] = []
    for owner, pod in pods(docs):
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        init_rw = {
            m["name"]
            for c in pod.get("initContainers", [])
            for m in c.get("volumeMounts", [])
            if not m.get("readOnly")
        }
        for c in pod.get("initContainers", []) + pod["containers"]:
            for m in c.get("volumeMounts", []):
                vol = volumes.get(m["name"], {})
                claim = vol.get("persistentVolumeClaim", {}).get("claimName")
                if (
                    claim
                    and not m.get("readOnly")
                    and not vol["persistentVolumeClaim"].get("readOnly")
                ):
                    written_claims.add(claim)
                elif claim:
                    readers.append((f"{where(owner)}: container {c['name']}", claim))
                if "emptyDir" in vol and m.get("readOnly") and m["name"] not in init_rw:
                    problems.append(
                        f"{where(owner)}: container {c['name']} reads emptyDir "
                        f"{m['name']}, which no init container writes"
                    )
            if component_of(owner) in ORT_COMPONENTS:
                problems += _bundle_mounted(owner, c, container_env(docs, c)[0])
    for at, claim in readers:
        modes = claims.get(claim, {}).get("spec", {}).get("accessModes", [])
        if claim not in written_claims:
            problems.append(
                f"{at}: reads claim {claim}, which no pod of the build writes (it stays empty)"
            )
        if modes == ["ReadOnlyMany"]:
            problems.append(
                f"{at}: claim {claim} is ReadOnlyMany only: EBS, Azure Disk and "
                "local-path cannot bind it, and nothing can fill it"
            )
    return problems


def _bundle_mounted(owner: Doc, c: Doc, env: dict[str, str]) -> list[str]:
    bundle = env.get("HARCLIP_MODEL__BUNDLE")
    mounts = [m["mountPath"].rstrip("/") + "/" for m in c.get("volumeMounts", [])]
    if not bundle or not harclip_image(c):
        return []
    if not any(bundle.startswith(m) for m in mounts):
        return [
            f"{where(owner)}: container {c['name']}: HARCLIP_MODEL__BUNDLE {bundle} is on "
            "none of its volumes"
        ]
    return []


MODEL_SCHEMES = ("s3", "models", "runs")  # what harclip.model.fetch reads in a cluster


def model_sources(docs: list[Doc]) -> list[str]:
    """Each model-fetch init container gets a MODEL_URI harclip.model.fetch can read (not a path:
    the pod has none), and for s3:// the object store's keys."""
    problems: list[str] = []
    for owner, pod in pods(docs):
        for c in pod.get("initContainers", []):
            if "harclip.model.fetch" not in " ".join(map(str, c.get("args", []))):
                continue
            env, _ = container_env(docs, c)
            uri, at = env.get("MODEL_URI", ""), f"{where(owner)}: container {c['name']}"
            scheme = uri.split(":", 1)[0] if ":" in uri else ""
            if scheme not in MODEL_SCHEMES:
                problems.append(f"{at}: MODEL_URI {uri!r} is not one of {MODEL_SCHEMES} URIs")
            elif scheme == "s3" and "HARCLIP_OBJECTS__SECRET_KEY" not in env:
                problems.append(f"{at}: MODEL_URI {uri} without the object store's keys")
    return problems


# ----------------------------------------------------------------------------- exposure


def _components_behind(docs: list[Doc], ingress: Doc) -> set[str]:
    services = {
        d["metadata"]["name"]: d["spec"].get("selector", {}).get("app.kubernetes.io/component")
        for d in by_kind(docs, "Service")
    }
    return {
        str(services.get(p["backend"]["service"]["name"]))
        for rule in ingress["spec"].get("rules", [])
        for p in rule.get("http", {}).get("paths", [])
        if "service" in p.get("backend", {})
    }


def published(docs: list[Doc]) -> list[str]:
    """Ingress hosts are served over TLS; the UI only behind a sign-in (auth-url); the API only
    with auth on, trusting X-Forwarded-For from its proxies."""
    problems: list[str] = []
    for ing in by_kind(docs, "Ingress"):
        at = where(ing)
        tls = {h for t in ing["spec"].get("tls", []) for h in t.get("hosts", [])}
        for rule in ing["spec"].get("rules", []):
            if rule.get("host") not in tls:
                problems.append(f"{at}: host {rule.get('host')} is served without TLS")
        behind = _components_behind(docs, ing)
        annotations = ing["metadata"].get("annotations", {})
        if "ui" in behind and "nginx.ingress.kubernetes.io/auth-url" not in annotations:
            problems.append(
                f"{at}: publishes the UI without a sign-in (an identity-aware proxy: "
                "nginx.ingress.kubernetes.io/auth-url)"
            )
        if "api" in behind:
            problems += _published_api(docs)
    return problems + _public_url(docs)


def _public_url(docs: list[Doc]) -> list[str]:
    """The events app links evidence under HARCLIP_API__PUBLIC_URL: https on the API's host."""
    api_hosts = {
        str(rule.get("host"))
        for ing in by_kind(docs, "Ingress")
        if "api" in _components_behind(docs, ing)
        for rule in ing["spec"].get("rules", [])
    }
    problems: list[str] = []
    for d in by_kind(docs, "Deployment"):
        if component_of(d) != "stream" or not api_hosts:
            continue
        for c in d["spec"]["template"]["spec"]["containers"]:
            url = container_env(docs, c)[0].get("HARCLIP_API__PUBLIC_URL", "http://127.0.0.1:8000")
            scheme, _, rest = url.partition("://")
            if scheme != "https" or rest.split("/")[0] not in api_hosts:
                problems.append(
                    f"{where(d)}: HARCLIP_API__PUBLIC_URL {url} is not https:// on the API's "
                    f"Ingress host ({', '.join(sorted(api_hosts))}): evidence links lead nowhere"
                )
    return problems


def _published_api(docs: list[Doc]) -> list[str]:
    problems: list[str] = []
    for d in by_kind(docs, "Deployment"):
        if component_of(d) != "api":
            continue
        for c in d["spec"]["template"]["spec"]["containers"]:
            env, _ = container_env(docs, c)
            if env.get("HARCLIP_AUTH__ENABLED", "false").lower() not in ("true", "1"):
                problems.append(f"{where(d)}: published by an Ingress with auth off")
            if "FORWARDED_ALLOW_IPS" not in env:
                problems.append(
                    f"{where(d)}: behind an Ingress without FORWARDED_ALLOW_IPS: "
                    "uvicorn sees the proxy as every client"
                )
    return problems


def kafka_listeners(docs: list[Doc]) -> list[str]:
    """Strimzi opens each listener to every pod unless its peers are named; lag comes from
    Kafka too (the exporter), not only from the workers."""
    problems: list[str] = []
    for kafka in by_kind(docs, "Kafka"):
        spec = kafka["spec"]
        for listener in spec["kafka"].get("listeners", []):
            if not listener.get("networkPolicyPeers"):
                problems.append(
                    f"{where(kafka)}: listener {listener['name']} has no "
                    "networkPolicyPeers: Strimzi's NetworkPolicy admits every pod"
                )
        if "kafkaExporter" not in spec:
            problems.append(f"{where(kafka)}: no kafkaExporter (consumer lag only self-reported)")
    return problems


def argocd_sync(docs: list[Doc]) -> list[str]:
    """ignoreDifferences hides a field from the diff; only RespectIgnoreDifferences=true keeps a
    sync from applying it."""
    problems: list[str] = []
    for app in by_kind(docs, "Application"):
        spec = app["spec"]
        options = spec.get("syncPolicy", {}).get("syncOptions", [])
        if spec.get("ignoreDifferences") and "RespectIgnoreDifferences=true" not in options:
            problems.append(
                f"{where(app)}: ignoreDifferences without "
                "RespectIgnoreDifferences=true: every sync re-applies those fields"
            )
    return problems


# ----------------------------------------------------------------------------- scheduling


def gpu_pods(docs: list[Doc]) -> list[str]:
    """Pods that ask for a GPU tolerate the GPU nodes' taint; a GPU Deployment rolls without a
    surge pod (a full GPU pool has no spare GPU for it)."""
    problems: list[str] = []
    for owner, pod in pods(docs):
        wants = any(GPU in c.get("resources", {}).get("limits", {}) for c in pod["containers"])
        if not wants:
            continue
        if not any(t.get("key") == GPU for t in pod.get("tolerations", [])):
            problems.append(f"{where(owner)}: asks for {GPU} without tolerating its taint")
        if owner["kind"] == "Deployment":
            rolling = owner["spec"].get("strategy", {}).get("rollingUpdate", {})
            if str(rolling.get("maxSurge", "25%")) not in ("0", "0%"):
                problems.append(
                    f"{where(owner)}: GPU pods with maxSurge "
                    f"{rolling.get('maxSurge', '25%')}: a rollout waits for a spare GPU"
                )
    return problems


def ort_threads(docs: list[Doc]) -> list[str]:
    """ONNX Runtime sizes its thread pool from the node's cores, not the container's CPU limit:
    the worker and API set HARCLIP_MODEL__INTRA_OP_THREADS from limits.cpu."""
    problems: list[str] = []
    for d in by_kind(docs, "Deployment"):
        if component_of(d) not in ORT_COMPONENTS:
            continue
        for c in d["spec"]["template"]["spec"]["containers"]:
            if "cpu" not in c.get("resources", {}).get("limits", {}):
                continue
            ref = next(
                (
                    e.get("valueFrom", {}).get("resourceFieldRef", {})
                    for e in c.get("env", [])
                    if e["name"] == "HARCLIP_MODEL__INTRA_OP_THREADS"
                ),
                None,
            )
            if not ref or ref.get("resource") != "limits.cpu":
                problems.append(
                    f"{where(d)}: container {c['name']} has a CPU limit but "
                    "HARCLIP_MODEL__INTRA_OP_THREADS does not follow limits.cpu"
                )
    return problems
