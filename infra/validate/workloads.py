"""The environment each workload would start with, read from the built manifests: which
ConfigMaps, Secrets and keys it reads and whether they exist (in the build, made by an
ExternalSecret or ECK, or made by the operator), and whether its HARCLIP_* variables load as
harclip's Settings. Part of the `cluster` check (infra.validate.cluster)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from pydantic import ValidationError

from harclip.config import Settings

Doc = dict[str, Any]
CREDENTIALS_NONE = "harclip.io/credentials"  # annotation value "none": a Secret without secrets
# Secrets the operator creates by hand (docs/deploy.md, "What the operator provides"): name -> keys
OPERATOR_SECRETS: dict[str, set[str] | None] = {"harclip-train-secrets": None}


def by_kind(docs: list[Doc], kind: str) -> Iterator[Doc]:
    return (d for d in docs if d.get("kind") == kind)


def namespace_of(doc: Doc) -> str:
    return str(doc.get("metadata", {}).get("namespace") or "default")


def component_of(doc: Doc) -> str | None:
    component = doc["metadata"].get("labels", {}).get("app.kubernetes.io/component")
    return None if component is None else str(component)


def where(doc: Doc) -> str:
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


def _stand_in(key: str) -> str:
    """A valid value for a setting whose real value is in a Secret."""
    if key.endswith("AUTH__KEYS"):
        return json.dumps({"stand-in": "admin"})
    return "stand-in"


def _secret_keys(docs: list[Doc]) -> dict[str, set[str] | None]:
    """Secret name -> its keys (None: unknown, any) for the Secrets this build makes or has
    made (ExternalSecret targets)."""
    out: dict[str, set[str] | None] = dict(OPERATOR_SECRETS)
    for d in by_kind(docs, "Elasticsearch"):  # ECK makes the superuser's
        out[f"{d['metadata']['name']}-es-elastic-user"] = {"elastic"}
    for d in by_kind(docs, "KafkaUser"):  # Strimzi's User Operator makes each user's
        out[d["metadata"]["name"]] = {"password", "sasl.jaas.config"}
    for d in by_kind(docs, "Secret"):
        out[d["metadata"]["name"]] = set(d.get("data") or {}) | set(d.get("stringData") or {})
    for d in by_kind(docs, "ExternalSecret"):
        spec = d["spec"]
        name = spec.get("target", {}).get("name") or d["metadata"]["name"]
        keys = {x["secretKey"] for x in spec.get("data", [])}
        keys |= set(spec.get("target", {}).get("template", {}).get("data", {}))
        out[name] = None if spec.get("dataFrom") else keys
    return out


def container_env(docs: list[Doc], c: Doc) -> tuple[dict[str, str], list[str]]:
    """The environment a container starts with (Secret values as stand-ins), and the references
    that would keep it from starting (a ConfigMap or Secret, or one of their keys, not there)."""
    maps = {d["metadata"]["name"]: d.get("data") or {} for d in by_kind(docs, "ConfigMap")}
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


# The addresses each component reaches (settings fields): in a pod, 127.0.0.1 is the pod itself
ADDRESSES = {
    "worker": ("kafka.bootstrap", "redis.url", "elasticsearch.url", "objects.url"),
    "api": ("kafka.bootstrap", "redis.url", "elasticsearch.url", "objects.url"),
    "stream": ("kafka.bootstrap", "redis.url", "elasticsearch.url", "objects.url"),
    "retention": ("elasticsearch.url", "objects.url"),
    "adapt": ("kafka.bootstrap", "redis.url", "elasticsearch.url"),
    "ui": ("ui.api_url", "ui.worker_metrics_url", "ui.events_metrics_url"),
}
LOOPBACK = re.compile(r"(^|//|@)(127\.0\.0\.1|localhost|\[::1\])(:|/|$)")


def load_settings(env: dict[str, str]) -> Settings | list[str]:
    """harclip's settings from an environment's HARCLIP_* variables, as the process would load
    them, or the errors it would refuse to start with."""
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
        return Settings(_env_file=None, **nested)
    except ValidationError as e:
        return [f"{'.'.join(map(str, x['loc'])) or 'settings'}: {x['msg']}" for x in e.errors()]


def settings_errors(env: dict[str, str], component: str | None = None) -> list[str]:
    """What keeps a component with this environment from working: settings it refuses, and
    addresses it needs that point at the pod itself (a default meant for one machine)."""
    settings = load_settings(env)
    if isinstance(settings, list):
        return settings
    problems: list[str] = []
    for field in ADDRESSES.get(component or "", ()):
        section, name = field.split(".")
        value = str(getattr(getattr(settings, section), name))
        if LOOPBACK.search(value):
            problems.append(
                f"{field} is {value}: the pod itself (set HARCLIP_{section.upper()}"
                f"__{name.upper()})"
            )
    return problems


def harclip_image(c: Doc) -> bool:
    return "/harclip-" in str(c.get("image", ""))


def workload_settings(docs: list[Doc]) -> list[str]:
    """Every harclip container's environment loads as Settings, and everything it reads is
    there: a job that gets `auth.enabled` without keys, or a key from a Secret nobody makes,
    fails at start in a cluster."""
    problems: list[str] = []
    for owner, pod in pods(docs):
        for c in pod.get("initContainers", []) + pod["containers"]:
            if not harclip_image(c):
                continue
            at = f"{where(owner)}: container {c['name']}"
            env, missing = container_env(docs, c)
            problems += [f"{at}: reads {m}, which the build neither has nor makes" for m in missing]
            component = component_of(owner) if c in pod["containers"] else None
            problems += [f"{at}: its settings fail: {e}" for e in settings_errors(env, component)]
    return problems


def secrets_in_build(docs: list[Doc]) -> list[str]:
    """No credentials in the manifests: a sync would put the placeholder back over the real
    value. Secrets come from an ExternalSecret or the operator (docs/deploy.md)."""
    return [
        f"{where(d)}: a Secret with data in the manifests (every sync re-applies it); make it "
        "an ExternalSecret or a Secret the operator creates"
        for d in by_kind(docs, "Secret")
        if d["metadata"].get("annotations", {}).get(CREDENTIALS_NONE) != "none"
    ]
