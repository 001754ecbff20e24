"""Prometheus rules and Grafana dashboards: `promtool check rules` and `promtool test rules`;
the PrometheusRule in k8s/base carries exactly rules.yml; every panel's PromQL parses (promtool,
as recording rules); every metric named by a rule or a panel is one the code exports."""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path
from typing import Any

import yaml

from infra.validate.tools import run, tool

RULES = Path("infra/monitoring/prometheus/rules.yml")
PROMETHEUS_CONFIG = Path("infra/monitoring/prometheus/prometheus.yml")
PROMETHEUS_RULE = Path("k8s/base/prometheusrule.yaml")
DASHBOARDS = Path("infra/monitoring/grafana/dashboards")
K8S_DASHBOARDS = Path("k8s/base/dashboards")

# Metrics that come from elsewhere than harclip's code, by prefix: Prometheus itself, the NVIDIA
# DCGM exporter (GPU memory), kube-state-metrics (replicas), KEDA's operator metrics, Strimzi's
# Kafka exporter (consumer-group lag as the brokers see it).
EXTERNAL = ("up", "ALERTS", "DCGM_FI_", "kube_", "keda_", "kafka_consumergroup_", "harclip:")
_SUFFIXES = ("_bucket", "_sum", "_count", "_total", "_created")
# Grafana's variables, replaced by something promtool parses
_VARIABLES = {
    "$__rate_interval": "1m", "$__interval": "1m", "$__range": "1h",
    "${__rate_interval}": "1m", "$__interval_ms": "60000",
}  # fmt: skip
_VARIABLE = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)(?::[a-z]+)?\}?")
_TOKEN = re.compile(r"(?<![0-9A-Za-z_:.])([A-Za-z_:][A-Za-z0-9_:]*)(\s*\()?")
_KEYWORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless",
    "offset", "bool", "le", "inf", "nan", "atan2",
}  # fmt: skip


def prometheus_rule(rules_file: Path) -> dict[str, Any]:
    """The PrometheusRule resource that carries `rules_file`'s groups."""
    groups = yaml.safe_load(rules_file.read_text())["groups"]
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "harclip", "labels": {"release": "prometheus"}},
        "spec": {"groups": groups},
    }


class _BlockDumper(yaml.SafeDumper):
    """Multi-line strings (PromQL) as `|` blocks, as in rules.yml."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_BlockDumper.add_representer(str, _str)


def write_prometheus_rule(root: Path) -> None:
    head = (
        "# Generated from infra/monitoring/prometheus/rules.yml by\n"
        "# `python -m infra.validate --write-prometheusrule`; edit the rules there.\n"
    )
    body = yaml.dump(prometheus_rule(root / RULES), Dumper=_BlockDumper, sort_keys=False, width=100)
    (root / PROMETHEUS_RULE).write_text(head + body)


def check_rules(root: Path) -> list[str]:
    problems: list[str] = []
    promtool = tool("promtool")
    code, out = run([promtool, "check", "rules", str(root / RULES)])
    if code:
        problems.append(f"promtool check rules: {out}")
    for test in sorted((root / RULES.parent).glob("*_test.yml")):
        code, out = run([promtool, "test", "rules", test.name], cwd=test.parent)
        if code:
            problems.append(f"promtool test rules {test.name}: {out}")
    problems += _check_config(root, promtool)
    problems += [
        f"{RULES}: {p}" for p in namespace_problems(yaml.safe_load((root / RULES).read_text()))
    ]
    deployed = yaml.safe_load((root / PROMETHEUS_RULE).read_text())
    if deployed != prometheus_rule(root / RULES):
        problems.append(f"{PROMETHEUS_RULE} differs from {RULES}: run "
                        "`python -m infra.validate --write-prometheusrule`")  # fmt: skip
    return problems


_AGGREGATION = re.compile(
    r"\b(sum|avg|min|max|count|topk|bottomk|quantile)\s*(by\s*\(([^)]*)\))?\s*\("
)


def namespace_problems(rules: dict[str, Any]) -> list[str]:
    """Every aggregation over harclip's series keeps `namespace` (`by (namespace, ...)`): dev and
    prod may share a Prometheus, and a sum over both hides one behind the other."""
    problems: list[str] = []
    for group in rules.get("groups", []):
        for rule in group.get("rules", []):
            expr = str(rule.get("expr", ""))
            if "harclip" not in expr:
                continue
            for m in _AGGREGATION.finditer(expr):
                if m[3] is None or "namespace" not in m[3].replace(" ", "").split(","):
                    name = rule.get("record") or rule.get("alert")
                    problems.append(f"{name}: `{m[0].strip()}` aggregates across namespaces")
    return problems


def _check_config(root: Path, promtool: str) -> list[str]:
    """`promtool check config` of the compose Prometheus, with its rule file where it is here."""
    config = yaml.safe_load((root / PROMETHEUS_CONFIG).read_text())
    config["rule_files"] = [str(root / RULES)]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "prometheus.yml"
        path.write_text(yaml.safe_dump(config))
        code, out = run([promtool, "check", "config", str(path)])
    return [f"promtool check config {PROMETHEUS_CONFIG}: {out}"] if code else []


# ----------------------------------------------------------------------------- dashboards


def panel_queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title, PromQL) of every target of every panel, rows included."""
    out: list[tuple[str, str]] = []

    def walk(panels: list[dict[str, Any]]) -> None:
        for p in panels:
            walk(p.get("panels", []))
            for t in p.get("targets", []):
                if t.get("expr"):
                    out.append((str(p.get("title", "?")), str(t["expr"])))

    walk(dashboard.get("panels", []))
    return out


def substitute(expr: str, variables: dict[str, str]) -> str:
    """PromQL with Grafana's variables replaced: built-ins by durations, template variables by
    `.*`-like values (they stand inside label matchers)."""
    for k, v in _VARIABLES.items():
        expr = expr.replace(k, v)
    return _VARIABLE.sub(lambda m: variables.get(m.group(1), "x"), expr)


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads: identifiers outside strings, label matchers,
    ranges and grouping clauses that are not functions, aggregations or keywords."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\{[^}]*\}", "{}", text)
    text = re.sub(r"\[[^\]]*\]", "[]", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    return {
        name for name, call in _TOKEN.findall(text) if not call and name.lower() not in _KEYWORDS
    }


def base_name(name: str) -> str:
    for suffix in _SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def exported_metrics() -> set[str]:
    """Every metric family the worker, the API and the events app register."""
    from api.metrics import ApiMetrics
    from consumers.metrics import WorkerMetrics
    from stream.metrics import StreamMetrics

    names: set[str] = set()
    for m in (WorkerMetrics(), ApiMetrics(), StreamMetrics()):
        names |= {family.name for family in m.registry.collect()}
    return names


def unknown_metrics(names: set[str], exported: set[str]) -> set[str]:
    return {
        n for n in names
        if not n.startswith(EXTERNAL) and base_name(n) not in exported and n not in exported
    }  # fmt: skip


def check_dashboards(root: Path) -> list[str]:
    problems: list[str] = []
    exported = exported_metrics()
    rules = yaml.safe_load((root / RULES).read_text())["groups"]
    recorded = {r["record"] for g in rules for r in g["rules"] if "record" in r}
    for g in rules:
        for r in g["rules"]:
            bad = unknown_metrics(metric_names(r["expr"]), exported)
            if bad:
                problems.append(f"{RULES}: {r.get('record') or r.get('alert')} reads metrics "
                                f"no service exports: {sorted(bad)}")  # fmt: skip
    files = sorted((root / DASHBOARDS).glob("*.json"))
    if not files:
        return [*problems, f"no dashboards in {DASHBOARDS}"]
    copies = {f.name: f.read_text() for f in (root / K8S_DASHBOARDS).glob("*.json")}
    if copies != {f.name: f.read_text() for f in files}:
        problems.append(f"{K8S_DASHBOARDS} differs from {DASHBOARDS}: run "
                        "`python infra/monitoring/grafana/build.py`")  # fmt: skip
    uids: set[str] = set()
    exprs: list[dict[str, str]] = []
    for f in files:
        try:
            dash = json.loads(f.read_text())
        except json.JSONDecodeError as e:
            problems.append(f"{f.name}: not JSON: {e}")
            continue
        problems += [f"{f.name}: {p}" for p in _dashboard_shape(dash)]
        if dash.get("uid") in uids:
            problems.append(f"{f.name}: uid {dash.get('uid')} used twice")
        uids.add(dash.get("uid"))
        variables = {v["name"]: "x" for v in dash.get("templating", {}).get("list", [])}
        queries = panel_queries(dash)
        if not queries:
            problems.append(f"{f.name}: no PromQL")
        for i, (title, expr) in enumerate(queries):
            names = metric_names(expr)
            bad = {n for n in unknown_metrics(names, exported) if n not in recorded}
            if bad:
                problems.append(f"{f.name}: panel {title!r} reads metrics no service exports or "
                                f"rule records: {sorted(bad)}")  # fmt: skip
            exprs.append({"record": f"dashboard:{f.stem.replace('-', '_')}:q{i}",
                          "expr": substitute(expr, variables)})  # fmt: skip
    problems += _promtool_parse(exprs)
    return problems


def _dashboard_shape(dash: dict[str, Any]) -> list[str]:
    problems = [
        f"missing {k}" for k in ("uid", "title", "panels", "schemaVersion") if k not in dash
    ]
    ids: set[int] = set()

    def walk(panels: list[dict[str, Any]]) -> None:
        for p in panels:
            if p.get("id") in ids:
                problems.append(f"panel id {p.get('id')} used twice")
            ids.add(p.get("id", -1))
            if "gridPos" not in p:
                problems.append(f"panel {p.get('title')!r} has no gridPos")
            ds = p.get("datasource")
            if (
                p.get("type") != "row"
                and isinstance(ds, dict)
                and ds.get("uid") not in ("prometheus", "${datasource}", "$datasource")
            ):
                problems.append(f"panel {p.get('title')!r}: datasource {ds} is not provisioned")
            walk(p.get("panels", []))

    walk(dash.get("panels", []))
    return problems


def _promtool_parse(exprs: list[dict[str, str]]) -> list[str]:
    """Let promtool parse every query, as recording rules of a scratch file."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "dashboards.rules.yml"
        path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": exprs}]}))
        code, out = run([tool("promtool"), "check", "rules", str(path)])
    if code == 0:
        return []
    # name each failing query by its record name -> panel
    return [f"dashboard PromQL does not parse: {out}"]
