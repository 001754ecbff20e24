"""What a real cluster would do with the built manifests, beyond their shape: addresses that other
namespaces' controllers resolve, replica counts owned by autoscalers, volumes nobody writes,
settings each workload's environment would refuse, Secrets a sync would overwrite, published
endpoints without TLS or sign-in, listeners open to every pod, GPU rollouts that need a spare GPU.

`check(root)` builds every kustomization under k8s/ (as the `k8s` check does) and applies
`policy(docs)` to each; `policy` is pure, for tests.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from harclip.config import Settings
from infra.validate import k8s

Doc = dict[str, Any]
# KEDA's operator resolves the ScaledObjects' addresses from its own namespace
QUALIFIED = re.compile(
    r"^(?P<svc>[a-z0-9-]+)\.(?P<ns>[a-z0-9-]+)\.svc(\.cluster\.local)?:(?P<port>\d+)$"
)
GPU = "nvidia.com/gpu"
ORT_COMPONENTS = ("worker", "api")  # containers that run ONNX Runtime
CREDENTIALS_NONE = "harclip.io/credentials"  # annotation value "none": a Secret without secrets
# Secrets the operator creates by hand (docs/deploy.md, "What the operator provides"): name -> keys
OPERATOR_SECRETS: dict[str, set[str] | None] = {"harclip-train-secrets": None}


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
    ]


def _by_kind(docs: list[Doc], kind: str) -> Iterator[Doc]:
    return (d for d in docs if d.get("kind") == kind)


def _ns(doc: Doc) -> str:
    return str(doc.get("metadata", {}).get("namespace") or "default")


def _component(doc: Doc) -> str | None:
    return doc["metadata"].get("labels", {}).get("app.kubernetes.io/component")


def _where(doc: Doc) -> str:
    return f"{doc['kind']}/{doc['metadata']['name']}"


def pods(docs: list[Doc]) -> Iterator[tuple[Doc, Doc]]:
    """(owner, pod spec) of every workload, CronJob and PyTorchJob role."""
    for d in docs:
        kind, spec = d.get("kind"), d.get("spec", {})
        if kind in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
            yield d, spec["template"]["spec"]
        elif kind == "CronJob":
            yield d, spec["jobTemplate"]["spec"]["template"]["spec"]
        elif kind == "PyTorchJob":
            for role in spec["pytorchReplicaSpecs"].values():
                yield d, role["template"]["spec"]


# ----------------------------------------------------------------------------- addresses


def keda_addresses(docs: list[Doc]) -> list[str]:
    """KEDA's Kafka triggers name the bootstrap Service with its namespace (the scaler runs in
    namespace keda), a Kafka of this build, and read the lag as the workers' consumer does."""
    problems: list[str] = []
    kafkas = {f"{d['metadata']['name']}-kafka-bootstrap": d for d in _by_kind(docs, "Kafka")}
    for so in _by_kind(docs, "ScaledObject"):
        spec, at = so["spec"], _where(so)
        for trigger in spec.get("triggers", []):
            if trigger.get("type") != "kafka":
                continue
            meta = trigger.get("metadata", {})
            for address in str(meta.get("bootstrapServers", "")).split(","):
                m = QUALIFIED.match(address.strip())
                if m is None:
                    problems.append(
                        f"{at}: bootstrapServers {address!r} does not resolve from "
                        "KEDA's namespace: use <service>.<namespace>.svc:<port>"
                    )
                elif m["ns"] != _ns(so):
                    problems.append(
                        f"{at}: bootstrapServers {address!r} names namespace "
                        f"{m['ns']}, the workers run in {_ns(so)}"
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
        f"{_where(d)}: sets replicas but is scaled by an autoscaler (a sync resets its count)"
        for d in _by_kind(docs, "Deployment")
        if d["metadata"]["name"] in scaled and "replicas" in d["spec"]
    ]


# ----------------------------------------------------------------------------- volumes


def volume_writers(docs: list[Doc]) -> list[str]:
    """Every volume a container reads has a writer: an emptyDir one of the pod's init containers
    fills, a claim that some pod of the build mounts writable and that can bind that way; and the
    model bundle a container is told to load lies on one of its mounts."""
    problems: list[str] = []
    claims = {d["metadata"]["name"]: d for d in _by_kind(docs, "PersistentVolumeClaim")}
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
                    readers.append((f"{_where(owner)}: container {c['name']}", claim))
                if "emptyDir" in vol and m.get("readOnly") and m["name"] not in init_rw:
                    problems.append(
                        f"{_where(owner)}: container {c['name']} reads emptyDir "
                        f"{m['name']}, which no init container writes"
                    )
            if _component(owner) in ORT_COMPONENTS:
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
    if not bundle or not _harclip_image(c):
        return []
    if not any(bundle.startswith(m) for m in mounts):
        return [
            f"{_where(owner)}: container {c['name']}: HARCLIP_MODEL__BUNDLE {bundle} is on "
            "none of its volumes"
        ]
    return []


# ----------------------------------------------------------------------------- settings


def _stand_in(key: str) -> str:
    """A valid value for a setting whose real value is in a Secret."""
    if key.endswith("AUTH__KEYS"):
        return json.dumps({"stand-in": "admin"})
    return "stand-in"


def _secret_keys(docs: list[Doc]) -> dict[str, set[str] | None]:
    """Secret name -> its keys (None: unknown, any) for the Secrets this build makes or has
    made (ExternalSecret targets)."""
    out: dict[str, set[str] | None] = dict(OPERATOR_SECRETS)
    for d in _by_kind(docs, "Elasticsearch"):  # ECK makes the superuser's
        out[f"{d['metadata']['name']}-es-elastic-user"] = {"elastic"}
    for d in _by_kind(docs, "Secret"):
        out[d["metadata"]["name"]] = set(d.get("data") or {}) | set(d.get("stringData") or {})
    for d in _by_kind(docs, "ExternalSecret"):
        spec = d["spec"]
        name = spec.get("target", {}).get("name") or d["metadata"]["name"]
        keys = {x["secretKey"] for x in spec.get("data", [])}
        keys |= set(spec.get("target", {}).get("template", {}).get("data", {}))
        out[name] = None if spec.get("dataFrom") else keys
    return out


def container_env(docs: list[Doc], c: Doc) -> tuple[dict[str, str], list[str]]:
    """The environment a container starts with (Secret values as stand-ins), and the references
    that would keep it from starting (a ConfigMap or Secret, or one of their keys, not there)."""
    maps = {d["metadata"]["name"]: d.get("data") or {} for d in _by_kind(docs, "ConfigMap")}
    secrets = _secret_keys(docs)
    env: dict[str, str] = {}
    missing: list[str] = []
    for src in c.get("envFrom", []):
        if "configMapRef" in src:
            ref = src["configMapRef"]
            if ref["name"] in maps:
                env.update({k: str(v) for k, v in maps[ref["name"]].items()})
            elif not ref.get("optional"):
                missing.append(f"ConfigMap {ref['name']}")
        elif "secretRef" in src:
            ref = src["secretRef"]
            if ref["name"] in secrets:
                env.update({k: _stand_in(k) for k in secrets[ref["name"]] or ()})
            elif not ref.get("optional"):
                missing.append(f"Secret {ref['name']}")
    for e in c.get("env", []):
        if "value" in e:
            env[e["name"]] = re.sub(r"\$\((\w+)\)", lambda m: env.get(m[1], m[0]), str(e["value"]))
            continue
        source = e.get("valueFrom", {})
        if "secretKeyRef" in source:
            ref = source["secretKeyRef"]
            keys = secrets.get(ref["name"], set())
            if ref["name"] in secrets and (keys is None or ref["key"] in keys):
                env[e["name"]] = _stand_in(e["name"])
            elif not ref.get("optional"):
                missing.append(f"key {ref['key']} of Secret {ref['name']}")
        elif "configMapKeyRef" in source:
            ref = source["configMapKeyRef"]
            if ref["key"] in maps.get(ref["name"], {}):
                env[e["name"]] = str(maps[ref["name"]][ref["key"]])
            elif not ref.get("optional"):
                missing.append(f"key {ref['key']} of ConfigMap {ref['name']}")
        else:  # resourceFieldRef, fieldRef: the kubelet fills these in
            env[e["name"]] = "1"
    return env, missing


def settings_errors(env: dict[str, str]) -> list[str]:
    """harclip's settings from an environment's HARCLIP_* variables, as the process would load
    them; the errors it would refuse to start with."""
    nested: dict[str, Any] = {}
    for key, value in env.items():
        if not key.startswith("HARCLIP_"):
            continue
        parts = key.removeprefix("HARCLIP_").lower().split("__")
        node = nested
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = json.loads(value) if value[:1] in "[{" else value
    try:
        Settings(_env_file=None, **nested)  # type: ignore[call-arg]
    except ValidationError as e:
        return [f"{'.'.join(map(str, x['loc'])) or 'settings'}: {x['msg']}" for x in e.errors()]
    return []


def _harclip_image(c: Doc) -> bool:
    return "/harclip-" in str(c.get("image", ""))


def workload_settings(docs: list[Doc]) -> list[str]:
    """Every harclip container's environment loads as Settings, and everything it reads is
    there: a job that gets `auth.enabled` without keys, or a key from a Secret nobody makes,
    fails at start in a cluster."""
    problems: list[str] = []
    for owner, pod in pods(docs):
        for c in pod.get("initContainers", []) + pod["containers"]:
            if not _harclip_image(c):
                continue
            at = f"{_where(owner)}: container {c['name']}"
            env, missing = container_env(docs, c)
            problems += [f"{at}: reads {m}, which the build neither has nor makes" for m in missing]
            problems += [f"{at}: its settings fail: {e}" for e in settings_errors(env)]
    return problems


def secrets_in_build(docs: list[Doc]) -> list[str]:
    """No credentials in the manifests: a sync would put the placeholder back over the real
    value. Secrets come from an ExternalSecret or the operator (docs/deploy.md)."""
    return [
        f"{_where(d)}: a Secret with data in the manifests (every sync re-applies it); make it "
        "an ExternalSecret or a Secret the operator creates"
        for d in _by_kind(docs, "Secret")
        if d["metadata"].get("annotations", {}).get(CREDENTIALS_NONE) != "none"
    ]


# ----------------------------------------------------------------------------- exposure


def _components_behind(docs: list[Doc], ingress: Doc) -> set[str]:
    services = {
        d["metadata"]["name"]: d["spec"].get("selector", {}).get("app.kubernetes.io/component")
        for d in _by_kind(docs, "Service")
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
    for ing in _by_kind(docs, "Ingress"):
        at = _where(ing)
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
    return problems


def _published_api(docs: list[Doc]) -> list[str]:
    problems: list[str] = []
    for d in _by_kind(docs, "Deployment"):
        if _component(d) != "api":
            continue
        for c in d["spec"]["template"]["spec"]["containers"]:
            env, _ = container_env(docs, c)
            if env.get("HARCLIP_AUTH__ENABLED", "false").lower() not in ("true", "1"):
                problems.append(f"{_where(d)}: published by an Ingress with auth off")
            if "FORWARDED_ALLOW_IPS" not in env:
                problems.append(
                    f"{_where(d)}: behind an Ingress without FORWARDED_ALLOW_IPS: "
                    "uvicorn sees the proxy as every client"
                )
    return problems


def kafka_listeners(docs: list[Doc]) -> list[str]:
    """Strimzi opens each listener to every pod unless its peers are named; lag comes from
    Kafka too (the exporter), not only from the workers."""
    problems: list[str] = []
    for kafka in _by_kind(docs, "Kafka"):
        spec = kafka["spec"]
        for listener in spec["kafka"].get("listeners", []):
            if not listener.get("networkPolicyPeers"):
                problems.append(
                    f"{_where(kafka)}: listener {listener['name']} has no "
                    "networkPolicyPeers: Strimzi's NetworkPolicy admits every pod"
                )
        if "kafkaExporter" not in spec:
            problems.append(f"{_where(kafka)}: no kafkaExporter (consumer lag only self-reported)")
    return problems


def argocd_sync(docs: list[Doc]) -> list[str]:
    """ignoreDifferences hides a field from the diff; only RespectIgnoreDifferences=true keeps a
    sync from applying it."""
    problems: list[str] = []
    for app in _by_kind(docs, "Application"):
        spec = app["spec"]
        options = spec.get("syncPolicy", {}).get("syncOptions", [])
        if spec.get("ignoreDifferences") and "RespectIgnoreDifferences=true" not in options:
            problems.append(
                f"{_where(app)}: ignoreDifferences without "
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
            problems.append(f"{_where(owner)}: asks for {GPU} without tolerating its taint")
        if owner["kind"] == "Deployment":
            rolling = owner["spec"].get("strategy", {}).get("rollingUpdate", {})
            if str(rolling.get("maxSurge", "25%")) not in ("0", "0%"):
                problems.append(
                    f"{_where(owner)}: GPU pods with maxSurge "
                    f"{rolling.get('maxSurge', '25%')}: a rollout waits for a spare GPU"
                )
    return problems


def ort_threads(docs: list[Doc]) -> list[str]:
    """ONNX Runtime sizes its thread pool from the node's cores, not the container's CPU limit:
    the worker and API set HARCLIP_MODEL__INTRA_OP_THREADS from limits.cpu."""
    problems: list[str] = []
    for d in _by_kind(docs, "Deployment"):
        if _component(d) not in ORT_COMPONENTS:
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
                    f"{_where(d)}: container {c['name']} has a CPU limit but "
                    "HARCLIP_MODEL__INTRA_OP_THREADS does not follow limits.cpu"
                )
    return problems
