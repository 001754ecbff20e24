"""Kibana saved objects (infra/kibana/saved-objects.ndjson), checked against the shape Kibana's
import API reads and against the index mappings harclip puts (harclip/io/indices.py): one JSON
object per line with type, id and attributes; ids unique; every reference resolves in the file;
data views name harclip's aliases and a date time field; every column, sort and query field of a
saved search exists in its data view's mapping; dashboard panels name their references."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from harclip.config import ElasticsearchSettings
from harclip.io.indices import alias, events_mappings, logs_mappings, predictions_mappings

SAVED_OBJECTS = Path("infra/kibana/saved-objects.ndjson")
FLUENT_BIT = Path("infra/logging/fluent-bit.yaml")
TYPES = {"index-pattern", "search", "dashboard", "visualization", "lens", "config"}
_KQL_FIELD = re.compile(r"([A-Za-z_@][\w.@]*)\s*:")


def fields(mappings: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """Dotted field name -> type, from a mapping's properties."""
    out: dict[str, str] = {}
    for name, spec in mappings.get("properties", {}).items():
        out[prefix + name] = spec.get("type", "object")
        if "properties" in spec:
            out |= fields(spec, f"{prefix}{name}.")
    return out


def index_fields() -> dict[str, dict[str, str]]:
    """The fields of each read alias, from harclip's own mappings."""
    s = ElasticsearchSettings()
    return {
        alias(s, "predictions"): fields(predictions_mappings(512)),
        alias(s, "events"): fields(events_mappings()),
        alias(s, "logs"): fields(logs_mappings()),
    }


def check(root: Path) -> list[str]:
    path = root / SAVED_OBJECTS
    objects: list[dict[str, Any]] = []
    problems: list[str] = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            problems.append(f"{SAVED_OBJECTS}:{n}: not JSON: {e}")
            continue
        if "exportedCount" in obj:  # the export summary line
            continue
        missing = [k for k in ("type", "id", "attributes") if k not in obj]
        if missing:
            problems.append(f"{SAVED_OBJECTS}:{n}: missing {missing}")
            continue
        if obj["type"] not in TYPES:
            problems.append(f"{SAVED_OBJECTS}:{n}: unknown type {obj['type']!r}")
        obj["_line"] = n
        objects.append(obj)
    problems += [f"{SAVED_OBJECTS}: {p}" for p in check_objects(objects)]
    return problems + [f"{FLUENT_BIT}: {p}" for p in check_fluent_bit(root / FLUENT_BIT)]


def check_fluent_bit(path: Path) -> list[str]:
    """Fluent Bit writes the daily indices harclip's logs template, alias and retention expect
    (`<logs alias>-<yyyy.mm.dd>`), and does not overwrite the ECS line's own @timestamp."""
    config = yaml.safe_load(path.read_text())
    outputs = [o for o in config.get("pipeline", {}).get("outputs", []) if o.get("name") == "es"]
    if not outputs:
        return ["no es output"]
    problems: list[str] = []
    logs = alias(ElasticsearchSettings(), "logs")
    for o in outputs:
        if o.get("logstash_format") is not True or o.get("logstash_prefix") != logs:
            problems.append(f"es output must write logstash_format indices with prefix {logs}")
        if o.get("logstash_dateformat") != "%Y.%m.%d":
            problems.append("es output: logstash_dateformat must be %Y.%m.%d (harclip's days)")
        if o.get("time_key", "@timestamp") == "@timestamp":
            problems.append("es output: time_key @timestamp would duplicate the ECS @timestamp")
    return problems + fluent_bit_routes(config)


def fluent_bit_routes(config: dict[str, Any]) -> list[str]:
    """Each namespace's logs reach that namespace's Elasticsearch only, as a user of its own
    (not the `elastic` superuser)."""
    pipeline = config.get("pipeline", {})
    namespaces: dict[str, str] = {}  # input tag -> namespace its path reads
    problems: list[str] = []
    for i in pipeline.get("inputs", []):
        m = re.fullmatch(r".*/\*_([a-z0-9-]+)_\*\.log", str(i.get("path", "")))
        if m is None:
            problems.append(f"input {i.get('tag')}: path {i.get('path')} does not name one "
                            "namespace (/var/log/containers/*_<namespace>_*.log)")  # fmt: skip
        else:
            namespaces[str(i.get("tag"))] = m[1]
    for o in pipeline.get("outputs", []):
        if o.get("name") != "es":
            continue
        if str(o.get("http_user", "")).strip() in ("", "elastic"):
            problems.append(f"es output {o.get('match')}: logs in as {o.get('http_user')!r}: "
                            "use a user that can only write the log indices")  # fmt: skip
        host = re.fullmatch(r"[a-z0-9-]+\.([a-z0-9-]+)\.svc(\.cluster\.local)?", str(o.get("host")))
        source = namespaces.get(str(o.get("match")))
        if host is None or source is None or host[1] != source:
            problems.append(f"es output {o.get('match')} -> {o.get('host')}: writes the logs of "
                            f"namespace {source} into another namespace's Elasticsearch (or its "
                            "host is not <service>.<namespace>.svc)")  # fmt: skip
    return problems


def check_objects(objects: list[dict[str, Any]]) -> list[str]:
    """The checks on parsed saved objects (pure)."""
    problems: list[str] = []
    by_key: dict[tuple[str, str], dict[str, Any]] = {}
    for o in objects:
        key = (o["type"], o["id"])
        if key in by_key:
            problems.append(f"{o['type']} id {o['id']!r} is used twice")
        by_key[key] = o
    mappings = index_fields()
    for o in objects:
        where = f"{o['type']} {o['id']!r}"
        refs = {r.get("name"): r for r in o.get("references", [])}
        for r in refs.values():
            if (r.get("type"), r.get("id")) not in by_key:
                problems.append(f"{where}: reference {r.get('name')} -> {r.get('type')} "
                                f"{r.get('id')!r} is not in the file")  # fmt: skip
        attrs = o["attributes"]
        if o["type"] == "index-pattern":
            problems += _data_view(where, attrs, mappings)
        elif o["type"] == "search":
            problems += _search(where, attrs, refs, by_key, mappings)
        elif o["type"] == "dashboard":
            problems += _dashboard(where, attrs, refs)
    return problems


_DOC_FIELD = re.compile(r"doc\[['\"]([^'\"]+)['\"]\]")


def _json_attr(attrs: dict[str, Any], name: str) -> dict[str, Any]:
    raw = attrs.get(name) or "{}"
    value = json.loads(raw) if isinstance(raw, str) else raw
    return value if isinstance(value, dict) else {}


def runtime_fields(attrs: dict[str, Any]) -> dict[str, str]:
    """A data view's runtime fields: name -> type."""
    try:
        found = _json_attr(attrs, "runtimeFieldMap")
    except json.JSONDecodeError:
        return {}
    return {name: str(spec.get("type", "keyword")) for name, spec in found.items()}


def _data_view(where: str, attrs: dict[str, Any], mappings: dict[str, dict[str, str]]) -> list[str]:
    title = attrs.get("title")
    if title not in mappings:
        return [f"{where}: title {title!r} is none of harclip's aliases {sorted(mappings)}"]
    time_field = attrs.get("timeFieldName")
    if mappings[title].get(time_field) != "date":
        return [f"{where}: time field {time_field!r} is not a date field of {title}"]
    try:
        runtime, formats = _json_attr(attrs, "runtimeFieldMap"), _json_attr(attrs, "fieldFormatMap")
    except json.JSONDecodeError as e:
        return [f"{where}: runtimeFieldMap / fieldFormatMap: {e!r}"]
    problems = []
    for name, spec in runtime.items():  # a script reads fields of the mapping only
        script = str(spec.get("script", {}).get("source", ""))
        problems += [f"{where}: runtime field {name!r} reads {f!r}, not in the mapping of {title}"
                     for f in _DOC_FIELD.findall(script) if f not in mappings[title]]  # fmt: skip
    for name, spec in formats.items():
        if name not in mappings[title] and name not in runtime:
            problems.append(f"{where}: field format of {name!r}, a field {title} does not have")
        if spec.get("id") == "url" and "{{value}}" not in str(spec.get("params", {}).get(
                "urlTemplate", "")):  # fmt: skip
            problems.append(f"{where}: the URL format of {name!r} has no {{{{value}}}}")
    return problems


def _search(
    where: str,
    attrs: dict[str, Any],
    refs: dict[str, Any],
    by_key: dict[tuple[str, str], dict[str, Any]],
    mappings: dict[str, dict[str, str]],
) -> list[str]:
    try:
        source = json.loads(attrs["kibanaSavedObjectMeta"]["searchSourceJSON"])
    except (KeyError, TypeError, json.JSONDecodeError) as e:
        return [f"{where}: searchSourceJSON: {e!r}"]
    ref = refs.get(source.get("indexRefName"))
    if ref is None:
        return [f"{where}: indexRefName {source.get('indexRefName')!r} names no reference"]
    view = by_key.get(("index-pattern", ref["id"]))
    if view is None:
        return []  # reported as an unresolved reference
    known = mappings.get(view["attributes"].get("title"), {})
    known = known | runtime_fields(view["attributes"])
    used = set(attrs.get("columns", [])) | {s[0] for s in attrs.get("sort", [])}
    used |= set(_KQL_FIELD.findall(source.get("query", {}).get("query", "")))
    return [f"{where}: field {f!r} is not in the mapping of {view['attributes'].get('title')}"
            for f in sorted(used) if f not in known and f != "_score"]  # fmt: skip


def _dashboard(where: str, attrs: dict[str, Any], refs: dict[str, Any]) -> list[str]:
    try:
        panels = json.loads(attrs["panelsJSON"])
    except (KeyError, TypeError, json.JSONDecodeError) as e:
        return [f"{where}: panelsJSON: {e!r}"]
    problems: list[str] = []
    for p in panels:
        name = p.get("panelRefName")
        if name not in refs:
            problems.append(f"{where}: panel {p.get('panelIndex')} names no reference ({name!r})")
        if not {"x", "y", "w", "h", "i"} <= set(p.get("gridData", {})):
            problems.append(f"{where}: panel {p.get('panelIndex')} has an incomplete gridData")
    return problems
