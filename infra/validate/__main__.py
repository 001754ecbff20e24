"""`python -m infra.validate [--root DIR] [--only CHECK ...]`: run the offline validators."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

from infra.validate import (
    chart,
    cluster,
    compose,
    images,
    k8s,
    kibana,
    monitoring,
    packages,
    pipelines,
    workflows,
)
from infra.validate.tools import K8S_SCHEMAS, REPO, MissingTool

CHECKS: dict[str, tuple[str, Callable[[Path], list[str]]]] = {
    "k8s": ("kustomize build | kubeconform -strict, and the manifest policy", k8s.check),
    "cluster": ("what a cluster would do: cross-namespace addresses, autoscaled replicas, volume "
                "writers, each workload's env as Settings, Secrets, TLS and sign-in, GPU rollouts, "
                "Kafka logins and ACLs, model sources, readiness",
                cluster.check),
    "chart": ("the Helm chart: generated from the overlays, helm lint, helm template of every "
              "values file | kubeconform, and the k8s and cluster policies", chart.check),
    "rules": ("promtool check rules, promtool test rules, PrometheusRule in sync",
              monitoring.check_rules),
    "dashboards": ("Grafana dashboards: shape, PromQL parsed by promtool, metric names exported",
                   monitoring.check_dashboards),
    "kibana": ("Kibana saved objects: import format, ids, references, fields in the mappings",
               kibana.check),
    "compose": ("docker-compose.yml against the Compose JSON schema, and its references",
                compose.check_compose),
    "docker": ("hadolint on every Dockerfile", compose.check_dockerfiles),
    "images": ("hashed locks and --require-hashes, pinned base images, compose volumes owned by "
               "their writers", images.check),
    "packages": ("every pinned package (locks, Dockerfiles) exists in the package list "
                 "(HARCLIP_PACKAGE_LIST; none set: nothing checked)", packages.check),
    "workflows": ("actionlint on .github/workflows", workflows.check),
    "pipelines": ("what GitHub would do: trigger filters, pushes to main, PR tokens, the model "
                  "gate on the served model", pipelines.check),
}  # fmt: skip


def install_k8s_schemas(source: Path, dest: Path = K8S_SCHEMAS) -> int:
    """Make kubernetes-validate's schemas readable by kubeconform: drop each `$id` and make the
    `_definitions.json` references relative to the file."""
    dest.mkdir(parents=True, exist_ok=True)
    n = 0
    for f in source.glob("*.json"):
        doc = json.loads(f.read_text())
        doc.pop("$id", None)
        text = json.dumps(doc).replace('"/api/_definitions.json#', '"_definitions.json#')
        (dest / f.name).write_text(text)
        n += 1
    return n


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m infra.validate", description=__doc__)
    ap.add_argument("--root", type=Path, default=REPO, help="repository root to check")
    ap.add_argument("--only", nargs="+", choices=sorted(CHECKS), help="run only these checks")
    ap.add_argument(
        "--write-prometheusrule",
        action="store_true",
        help="regenerate k8s/base/prometheusrule.yaml from the rules and exit",
    )
    ap.add_argument(
        "--write-chart",
        action="store_true",
        help="regenerate k8s/chart/templates from the kustomize overlays and exit",
    )
    ap.add_argument(
        "--install-k8s-schemas",
        type=Path,
        metavar="DIR",
        help="convert kubernetes-validate's schema folder DIR for kubeconform and exit",
    )
    ap.add_argument(
        "--online",
        action="store_true",
        help="also resolve every lock's pins against the package index (network)",
    )
    args = ap.parse_args(argv)  # fmt: skip
    if args.online:
        os.environ[images.ONLINE] = "1"
    if args.write_prometheusrule:
        monitoring.write_prometheus_rule(args.root)
        return 0
    if args.write_chart:
        print(f"{chart.write(args.root)} templates -> k8s/chart/templates")
        return 0
    if args.install_k8s_schemas:
        print(f"{install_k8s_schemas(args.install_k8s_schemas)} schemas -> {K8S_SCHEMAS}")
        return 0
    failed = 0
    for name in args.only or CHECKS:
        what, check = CHECKS[name]
        start = time.perf_counter()
        try:
            problems = check(args.root.resolve())
        except MissingTool as e:
            problems = [str(e)]
        took = time.perf_counter() - start
        if problems:
            failed += 1
            print(f"FAIL {name} ({took:.1f} s): {what}")
            for p in problems:
                print("  " + p.replace("\n", "\n    "))
        else:
            print(f"ok   {name} ({took:.1f} s): {what}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
