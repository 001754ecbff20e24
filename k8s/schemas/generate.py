"""Generate kubeconform JSON schemas for the custom resources harclip's manifests use, from each
operator's published CRD YAML (`openAPIV3Schema` of every served version).

The output is committed (`k8s/schemas/crds/<group>/<kind>_<version>.json`, listed with source and
version in `k8s/schemas/crds/SOURCES.json`), so validation needs no network. To refresh, get the
upstream repositories as git mirrors (`<root>/<owner>+<name>/repo`), change a tag below, and run

    python k8s/schemas/generate.py --mirrors /path/to/mirrors

Like kubeconform's own `openapi2jsonschema.py`, objects that list `properties` and neither allow
unknown fields (`x-kubernetes-preserve-unknown-fields`) nor set `additionalProperties` get
`additionalProperties: false`, so `kubeconform -strict` catches a misspelt field in a custom
resource too; descriptions are dropped to keep the files small.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

# (GitHub repository, release tag, path of the CRD YAML in it)
SOURCES: tuple[tuple[str, str, str], ...] = (
    ("kedacore/keda", "v2.20.2", "config/crd/bases/keda.sh_scaledobjects.yaml"),
    ("kedacore/keda", "v2.20.2", "config/crd/bases/keda.sh_triggerauthentications.yaml"),
    ("strimzi/strimzi-kafka-operator", "1.2.0",
     "packaging/install/cluster-operator/040-Crd-kafka.yaml"),
    ("strimzi/strimzi-kafka-operator", "1.2.0",
     "packaging/install/cluster-operator/043-Crd-kafkatopic.yaml"),
    ("strimzi/strimzi-kafka-operator", "1.2.0",
     "packaging/install/cluster-operator/045-Crd-kafkanodepool.yaml"),
    ("strimzi/strimzi-kafka-operator", "1.2.0",
     "packaging/install/cluster-operator/044-Crd-kafkauser.yaml"),
    ("elastic/cloud-on-k8s", "v3.5.0",
     "config/crds/v1/resources/elasticsearch.k8s.elastic.co_elasticsearches.yaml"),
    ("elastic/cloud-on-k8s", "v3.5.0",
     "config/crds/v1/resources/kibana.k8s.elastic.co_kibanas.yaml"),
    ("prometheus-operator/prometheus-operator", "v0.93.0",
     "example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml"),
    ("prometheus-operator/prometheus-operator", "v0.93.0",
     "example/prometheus-operator-crd/monitoring.coreos.com_prometheusrules.yaml"),
    ("kubeflow/training-operator", "v1.9.0", "manifests/base/crds/kubeflow.org_pytorchjobs.yaml"),
    ("argoproj/argo-cd", "v3.5.1", "manifests/crds/application-crd.yaml"),
    ("argoproj/argo-cd", "v3.5.1", "manifests/crds/appproject-crd.yaml"),
    ("external-secrets/external-secrets", "v2.9.0",
     "config/crds/bases/external-secrets.io_externalsecrets.yaml"),
)  # fmt: skip

OUT = Path(__file__).parent / "crds"
# The Kafka versions a Strimzi release runs (its kafka-versions.yaml, `supported: true`) become an
# enum on Kafka's spec.kafka.version, so kubeconform refuses a broker version the operator cannot
# run.
STRIMZI_VERSIONS = ("strimzi/strimzi-kafka-operator", "1.2.0", "kafka-versions.yaml")


def _close(node: Any) -> Any:
    """Strip descriptions; close objects that list their properties (as kubeconform's own
    converter does)."""
    if isinstance(node, list):
        return [_close(x) for x in node]
    if not isinstance(node, dict):
        return node
    out = {k: _close(v) for k, v in node.items() if k != "description"}
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    if isinstance(node.get("properties"), dict):
        # a property literally named "description" is a field, not a doc string
        out["properties"] = {k: _close(v) for k, v in node["properties"].items()}
    return out


def schemas(crd: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """`<group>/<kind>_<version>.json` -> JSON schema, for every served version of one CRD."""
    spec = crd["spec"]
    group, kind = spec["group"], spec["names"]["kind"]
    out: dict[str, dict[str, Any]] = {}
    for version in spec["versions"]:
        if not version.get("served", True):
            continue
        schema = _close(version["schema"]["openAPIV3Schema"])
        schema["$schema"] = "http://json-schema.org/draft-07/schema#"
        props = schema.setdefault("properties", {})
        props["apiVersion"] = {"type": "string", "enum": [f"{group}/{version['name']}"]}
        props["kind"] = {"type": "string", "enum": [kind]}
        out[f"{group}/{kind.lower()}_{version['name']}.json"] = schema
    return out


def _read(mirrors: Path, repo: str, tag: str, path: str) -> tuple[str, str]:
    git = mirrors / repo.replace("/", "+") / "repo"
    text = subprocess.run(
        ["git", "-C", str(git), "show", f"{tag}:{path}"], check=True, capture_output=True, text=True
    ).stdout
    commit = subprocess.run(
        ["git", "-C", str(git), "rev-parse", f"{tag}^{{commit}}"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    return text, commit


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mirrors", type=Path, required=True, help="folder of <owner>+<name>/repo")
    args = ap.parse_args(argv)
    index: list[dict[str, Any]] = []
    for repo, tag, path in SOURCES:
        text, commit = _read(args.mirrors, repo, tag, path)
        for doc in yaml.safe_load_all(text):
            if not doc or doc.get("kind") != "CustomResourceDefinition":
                continue
            for name, schema in schemas(doc).items():
                target = OUT / name
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(json.dumps(schema, indent=1, sort_keys=True) + "\n")
                index.append({"schema": name, "repo": repo, "tag": tag, "commit": commit,
                              "path": path})  # fmt: skip
                print(f"{name}  <- {repo}@{tag}:{path}")
    repo, tag, path = STRIMZI_VERSIONS
    text, commit = _read(args.mirrors, repo, tag, path)
    supported = [str(v["version"]) for v in yaml.safe_load(text) if v.get("supported")]
    kafka = OUT / "kafka.strimzi.io" / "kafka_v1.json"
    schema = json.loads(kafka.read_text())
    schema["properties"]["spec"]["properties"]["kafka"]["properties"]["version"]["enum"] = supported
    kafka.write_text(json.dumps(schema, indent=1, sort_keys=True) + "\n")
    index.append({"schema": "kafka.strimzi.io/kafka_v1.json (spec.kafka.version enum)",
                  "repo": repo, "tag": tag, "commit": commit, "path": path})  # fmt: skip
    print(f"Kafka versions of Strimzi {tag}: {supported}")
    (OUT / "SOURCES.json").write_text(json.dumps(index, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
