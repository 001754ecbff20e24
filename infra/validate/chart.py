"""The Helm chart `k8s/chart/`, generated from the kustomize overlays (one source of truth).

`python -m infra.validate --write-chart` renders `kustomize build` of `k8s/overlays/dev` (the
`small` profile, CPU workers) and `k8s/overlays/prod` (`large`, GPU workers) into
`k8s/chart/templates/`: objects equal in both are written once, the others once per profile
(`{{ if eq .Values.profile "large" }}`; the worker Deployment by `.Values.gpu.enabled`), and
what an installation chooses becomes a value: the release namespace, image registry and tag,
the Ingress hosts and certificate issuer, the model URI, bundled or external Kafka /
Elasticsearch / Redis, ExternalSecrets or pre-created Secrets, monitoring. Chart.yaml,
values.yaml, values/*.yaml and templates/_helpers.tpl are written by hand.

The `chart` check: the templates equal a fresh rendering, `helm lint` and `helm template` of
every values file, each rendering through kubeconform and the `k8s` and `cluster` policies.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Any

import yaml

from infra.validate import cluster, k8s, workloads
from infra.validate.tools import run, tool

Doc = dict[str, Any]
CHART = Path("k8s") / "chart"
PROFILES = {"small": "overlays/dev", "large": "overlays/prod"}
HOSTS = {"small": "harclip.dev.example.com", "large": "harclip.example.com"}
NAMESPACES = {"small": "harclip-dev", "large": "harclip"}
HASHED = re.compile(r"\b(harclip-(?:config|model))-[a-z0-9]{10}\b")
IMAGE = re.compile(r"ghcr\.io/harclip/(harclip-[a-z]+(?:-gpu)?):[\w.-]+")
# Secrets the operator creates when ExternalSecrets are off (docs/deploy.md), and those Strimzi
# makes for the KafkaUsers when Kafka is external (then the operator's too)
PRECREATED = ("harclip-api-keys", "harclip-redis", "harclip-es-app", "harclip-es-logs",
              "harclip-objects")  # fmt: skip
KAFKA_USER_SECRETS = ("harclip-worker", "harclip-api", "harclip-stream", "harclip-keda")


KAFKA = '{{ include "harclip.kafkaBootstrap" . }}'
VALUES = {  # ConfigMap keys whose value is the installation's
    r"MODEL_URI: .*": "MODEL_URI: {{ .Values.model.uri | quote }}",
    r"MLFLOW_TRACKING_URI: .*": "MLFLOW_TRACKING_URI: "
    "{{ .Values.model.mlflowTrackingUri | quote }}",
    r"HARCLIP_KAFKA__BOOTSTRAP: .*": "HARCLIP_KAFKA__BOOTSTRAP: " + KAFKA,
    r"HARCLIP_ELASTICSEARCH__URL: .*": "HARCLIP_ELASTICSEARCH__URL: "
    "{{ .Values.elasticsearch.url | quote }}",
}


def _condition(doc: Doc) -> str | None:
    """The value that turns an object on (None: always there)."""
    kind, name = doc["kind"], doc["metadata"]["name"]
    if kind.startswith("Kafka") or "kafka-exporter" in name or name == "harclip-kafka":
        return ".Values.kafka.bundled"
    if kind in ("Elasticsearch", "Kibana") or name in ("harclip-es-roles",
                                                       "harclip-elasticsearch"):  # fmt: skip
        return ".Values.elasticsearch.bundled"
    if name == "harclip-redis" and kind in ("StatefulSet", "Service", "NetworkPolicy"):
        return ".Values.redis.bundled"
    if kind == "ExternalSecret":
        return ".Values.externalSecrets.enabled"
    if kind == "Ingress":
        return ".Values.ingress.enabled"
    if kind in ("PrometheusRule", "ServiceMonitor") or name == "harclip-dashboards":
        return ".Values.monitoring.enabled"
    return None


def _key(doc: Doc) -> tuple[str, str]:
    return doc["kind"], HASHED.sub(r"\1", doc["metadata"]["name"])


def _text(doc: Doc, profile: str) -> str:
    """One object as template text, with what an installation chooses made a value."""
    doc = dict(doc)
    if doc["kind"] in ("Deployment", "StatefulSet"):  # roll on config and model changes
        meta = doc["spec"]["template"].setdefault("metadata", {})
        meta.setdefault("annotations", {})["checksum/config"] = "CHECKSUM"
    out = yaml.safe_dump(doc, sort_keys=False, width=1000).replace("{{", '{{ "{{" }}')
    ns, host = NAMESPACES[profile], HOSTS[profile]
    out = HASHED.sub(r"\1", out)
    out = out.replace(f"namespace: {ns}\n", "namespace: {{ .Release.Namespace }}\n")
    out = out.replace(f".{ns}.svc", ".{{ .Release.Namespace }}.svc")
    out = out.replace(f"api.{host}", "{{ .Values.ingress.apiHost }}")
    out = out.replace(host, "{{ .Values.ingress.uiHost }}")
    out = IMAGE.sub(r"{{ .Values.image.registry }}/\1:{{ .Values.image.tag }}", out)
    out = out.replace(
        "cluster-issuer: letsencrypt", "cluster-issuer: {{ .Values.ingress.clusterIssuer }}"
    )
    out = out.replace("checksum/config: CHECKSUM", "checksum/config: "
                      "{{ include (print $.Template.BasePath \"/configmap-harclip-config.yaml\") . "
                      "| sha256sum }}{{ include (print $.Template.BasePath "
                      "\"/configmap-harclip-model.yaml\") . | sha256sum | trunc 8 }}")  # fmt: skip
    for pattern, value in VALUES.items():
        out = re.sub(pattern, value, out)
    out = out.replace("harclip-kafka-kafka-bootstrap.{{ .Release.Namespace }}.svc:9092", KAFKA)
    out = out.replace("redis://harclip-redis:6379/", "redis://{{ .Values.redis.address }}/")
    return out


def _config_text(dev: Doc, prod: Doc) -> str:
    """harclip-config: the keys both profiles share, then each profile's, then GPU's."""
    gpu_keys = ("HARCLIP_MODEL__PROVIDERS", "HARCLIP_BATCHING__MAX_BATCH")
    common = {k: v for k, v in dev["data"].items() if prod["data"].get(k) == v}
    lines = ["apiVersion: v1", "kind: ConfigMap", "metadata:", "  name: harclip-config",
             "  namespace: {{ .Release.Namespace }}", "  labels:",
             "    app.kubernetes.io/part-of: harclip", "data:"]  # fmt: skip

    def items(data: dict[str, str], profile: str) -> list[str]:
        doc = {"kind": "x", "metadata": {"name": "x"}, "data": data}
        body = _text(doc, profile).split("\ndata:\n", 1)[1]
        return [line for line in body.splitlines() if line]

    lines += items(common, "small")
    small = {k: v for k, v in dev["data"].items() if k not in common}
    large = {k: v for k, v in prod["data"].items() if k not in common and k not in gpu_keys}
    lines += ['{{- if eq .Values.profile "large" }}', *items(large, "large"), "{{- else }}",
              *items(small, "small"), "{{- end }}", "{{- if .Values.gpu.enabled }}",
              *items({k: prod["data"][k] for k in gpu_keys}, "large"), "{{- end }}",
              "{{- range $k, $v := .Values.config }}", "  {{ $k }}: {{ $v | quote }}",
              "{{- end }}"]  # fmt: skip
    return "\n".join(lines) + "\n"


def _variants(texts: dict[str, str], test: str) -> str:
    """Each profile's text under its condition (`test` true: the large one)."""
    out = ""
    for i, (profile, text) in enumerate(sorted(texts.items())):
        cond = test if profile == "large" else f"not ({test})"
        out += f"{{{{- {'else if' if i else 'if'} {cond} }}}}\n{text}"
    return out + "{{- end }}\n"


def _wrap(text: str, condition: str | None) -> str:
    return text if condition is None else f"{{{{- if {condition} }}}}\n{text}{{{{- end }}}}\n"


def render(root: Path) -> dict[str, str] | list[str]:
    """templates/<file> -> text, from the overlays' builds; or the build errors."""
    builds: dict[str, dict[tuple[str, str], Doc]] = {}
    for profile, overlay in PROFILES.items():
        out, errors = k8s.build(root / "k8s" / overlay)
        if errors:
            return errors
        builds[profile] = {_key(d): d for d in k8s.load_docs(out) if d["kind"] != "Namespace"}
    small, large = builds["small"], builds["large"]
    files: dict[str, str] = {}
    for key in dict.fromkeys([*small, *large]):
        kind, name = key
        fname = f"{kind.lower()}-{name}.yaml"
        if key == ("ConfigMap", "harclip-config"):
            files[fname] = _config_text(small[key], large[key])
            continue
        texts = {p: _text(b[key], p) for p, b in builds.items() if key in b}
        doc = small.get(key) or large[key]
        if len(texts) == 2 and texts["small"] == texts["large"]:
            body = texts["small"]
        else:
            test = ".Values.gpu.enabled" if key == ("Deployment", "harclip-worker") else (
                'eq .Values.profile "large"')  # fmt: skip
            body = _variants(texts, test)
        files[fname] = _wrap(body, _condition(doc))
    return files


def write(root: Path) -> int:
    files = render(root)
    if isinstance(files, list):
        raise SystemExit("\n".join(files))
    folder = root / CHART / "templates"
    for old in folder.glob("*.yaml"):
        old.unlink()
    for name, text in files.items():
        (folder / name).write_text(text)
    return len(files)


def check(root: Path) -> list[str]:
    files = render(root)
    if isinstance(files, list):
        return files
    folder = root / CHART / "templates"
    have = {p.name: p.read_text() for p in folder.glob("*.yaml")}
    if have != files:
        stale = sorted(set(have) ^ set(files) | {n for n in files if have.get(n) != files[n]})
        return [f"k8s/chart/templates differ from the overlays ({', '.join(stale[:5])}...): run "
                "`python -m infra.validate --write-chart`"]  # fmt: skip
    problems = _served_model(root)
    values = [None, *sorted((root / CHART / "values").glob("*.yaml"))]
    with tempfile.TemporaryDirectory() as tmp:
        rendered: list[Path] = []
        for v in values:
            name = "values.yaml" if v is None else f"values/{v.name}"
            extra = [] if v is None else ["-f", str(v)]
            code, out = run([tool("helm"), "lint", "--strict", str(root / CHART), *extra])
            if code != 0:
                problems.append(f"helm lint {name}: {out}")
            code, out = run([tool("helm"), "template", "harclip", str(root / CHART),
                             "--namespace", "harclip-x", *extra])  # fmt: skip
            if code != 0:
                problems.append(f"helm template {name}: {out}")
                continue
            rendered.append(Path(tmp) / name.replace("/", "_"))
            rendered[-1].write_text(out)
            docs = k8s.load_docs(out)
            problems += [f"chart {name}: {p}" for p in _policies(docs)]
        if rendered:
            problems += k8s.kubeconform(root, rendered)
    return problems


def _served_model(root: Path) -> list[str]:
    """The large values serve the bundle the prod overlay serves (retrain bumps both)."""
    large = root / CHART / "values" / "gpu-large.yaml"
    if not large.is_file():
        return []
    uri = (yaml.safe_load(large.read_text()) or {}).get("model", {}).get("uri")
    prod = (root / "k8s" / "overlays" / "prod" / "kustomization.yaml").read_text()
    served = re.search(r"MODEL_URI=(\S+)", prod)
    if served is None or served[1] != uri:
        return [f"k8s/chart/values/gpu-large.yaml model.uri {uri} is not the prod overlay's "
                f"MODEL_URI {served[1] if served else None}"]  # fmt: skip
    return []


def _policies(docs: list[Doc]) -> list[str]:
    """The overlays' policies; Secrets no object of the rendering makes are the operator's when
    ExternalSecrets are off or Kafka is external (docs/deploy.md)."""
    made = {d["metadata"]["name"] for d in docs if d["kind"] in ("ExternalSecret", "KafkaUser")}
    saved = dict(workloads.OPERATOR_SECRETS)
    for name in (*PRECREATED, *KAFKA_USER_SECRETS):
        if name not in made:
            workloads.OPERATOR_SECRETS[name] = None
    try:
        return k8s.policy(docs) + cluster.policy(docs)
    finally:
        workloads.OPERATOR_SECRETS.clear()
        workloads.OPERATOR_SECRETS.update(saved)
