"""Elasticsearch indices: one family of daily indices per kind of document, behind a read alias.

- predictions: `<alias>-<space>-<yyyy.mm.dd>`, one embedding space (model name, embedding size,
  model version) per index, so a model upgrade writes to its own indices with no manual step;
  the alias (`harclip-predictions`) spans every space and day, so history by stream, label and
  time covers every model, while vector search stays inside one space (`space_pattern`).
- events: `<alias>-<yyyy.mm.dd>` (`harclip-events`); logs: `<alias>-<yyyy.mm.dd>`.

The day is the document's own time (a prediction's `captured_at`), never the wall clock, so a
replayed document lands in the same index and overwrites itself (`_id`). Retention deletes whole
days (`dated_indices`, `expired`): this Elasticsearch build has no ILM; clusters that have it
can use the policy and rollover templates under `infra/elasticsearch/` instead. Retention touches
only indices it owns: a name of the family's exact grammar with a real date, created from
harclip's template (the mapping's `_meta` marker; before the marker, the family's read alias).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from elasticsearch import AsyncElasticsearch, BadRequestError

from harclip.config import ElasticsearchSettings
from harclip.errors import ConfigError
from harclip.io.es import es_errors, reason

Family = Literal["predictions", "events", "logs"]
FAMILIES: tuple[Family, ...] = ("predictions", "events", "logs")
EMBEDDING = "embedding"  # the dense_vector field of prediction documents (keyframes only)
_EPOCH_MS = {"type": "date", "format": "epoch_millis"}
_DATE = r"(\d{4})\.(\d{2})\.(\d{2})"
_SPACE_SLUG = r"[a-z0-9_]+(?:-[a-z0-9_]+)*-[1-9][0-9]*d"  # EmbeddingSpace.slug
MARKER = "harclip"  # `_meta.managed_by` of the indices harclip's templates create
_SLUG = re.compile(r"[^a-z0-9_]+")


@dataclass(frozen=True, slots=True)
class EmbeddingSpace:
    """Where an embedding can be compared: one model (name, version) and its embedding size."""

    model: str
    version: str
    dims: int

    @property
    def slug(self) -> str:
        """A lowercase index-name part, e.g. `clip-vit-b-32-har-v1-512d`."""
        name = _SLUG.sub("-", f"{self.model}-v{self.version}".lower()).strip("-")
        return f"{name}-{self.dims}d"


def day(at_ms: int) -> str:
    """The UTC day of `at_ms` (ms since epoch) as an index suffix, `yyyy.mm.dd`."""
    return dt.datetime.fromtimestamp(at_ms / 1000, dt.UTC).strftime("%Y.%m.%d")


def alias(s: ElasticsearchSettings, family: Family) -> str:
    """The read alias of a family (also the prefix of its indices)."""
    return {"predictions": s.predictions_index, "events": s.events_index,
            "logs": s.logs_index}[family]  # fmt: skip


def space_pattern(s: ElasticsearchSettings, space: EmbeddingSpace) -> str:
    """Every daily index of one embedding space (what a vector search may query)."""
    return f"{s.predictions_index}-{space.slug}-*"


def predictions_index(s: ElasticsearchSettings, space: EmbeddingSpace, at_ms: int) -> str:
    """The index a prediction captured at `at_ms` (ms since epoch) goes to."""
    return f"{s.predictions_index}-{space.slug}-{day(at_ms)}"


def daily_index(s: ElasticsearchSettings, family: Family, at_ms: int) -> str:
    """The index of an event or a log line dated `at_ms` (ms since epoch)."""
    return f"{alias(s, family)}-{day(at_ms)}"


def retention_days(s: ElasticsearchSettings, family: Family) -> int:
    days: dict[Family, int] = {
        "predictions": s.predictions_retention_days,
        "events": s.events_retention_days,
        "logs": s.logs_retention_days,
    }
    return days[family]  # fmt: skip


# ----------------------------------------------------------------------------- mappings


def predictions_mappings(dims: int) -> dict[str, Any]:
    """The Prediction JSON plus `keyframe_id` and, on keyframes, `embedding`.

    Only what is searched, filtered, sorted or aggregated is indexed; the rest (`seq`, `top_k`,
    latencies, head version) is kept in `_source`, and fields looked up by id only keep doc
    values (a doc-values-only keyword still answers term queries). The embedding is stored as
    int8 (`element_type: byte`, each vector scaled by 127 / its largest component: cosine is
    scale-free, ranking agrees with float32): 512 bytes instead of 2048. `dynamic: false` keeps a
    field added to Prediction in `_source` without failing the writes of a newer worker.
    `watches` ({name: score}) is one `flattened` field: any number of watch names costs one
    mapped field (exists/term queries on `watches.<name>`; values compare as keywords).
    """
    source_only = {"type": "object", "enabled": False}
    return {
        "dynamic": False,
        "properties": {
            "frame_id": {"type": "keyword", "index": False},  # = _id; doc values: sort ties
            "stream_id": {"type": "keyword"},
            "seq": {"type": "long", "index": False, "doc_values": False},
            "captured_at": _EPOCH_MS,
            "label": {"type": "keyword"},
            "score": {"type": "float"},
            "top_k": source_only,
            "latency_ms": source_only,
            "model": {"properties": {"name": {"type": "keyword"}, "engine": {"type": "keyword"}}},
            "keyframe_id": {"type": "keyword", "index": False},  # terms on doc values
            "watches": {"type": "flattened"},
            EMBEDDING: {
                "type": "dense_vector",
                "dims": dims,
                "element_type": "byte",
                "index": True,
                "similarity": "cosine",
            },
        },
    }


def quantize(vector: np.ndarray) -> np.ndarray:
    """float32 [D] -> int8 [D] for the `byte` embedding: scaled by 127 / max |x| (cosine, the
    only similarity used, does not change with the scale)."""
    peak = float(np.abs(vector).max())
    scale = 127.0 / peak if peak > 0 else 0.0
    return np.clip(np.rint(vector * scale), -127, 127).astype(np.int8)


def events_mappings() -> dict[str, Any]:
    """The `harclip.event/1` Event (harclip.events); strings added later become keywords."""
    return {
        "dynamic": True,
        "dynamic_templates": [
            {"strings": {"match_mapping_type": "string", "mapping": {"type": "keyword"}}}
        ],
        "properties": {
            "schema": {"type": "keyword"},
            "event_id": {"type": "keyword"},
            "type": {"type": "keyword"},
            "stream_id": {"type": "keyword"},
            "label": {"type": "keyword"},
            "start": _EPOCH_MS,
            "end": _EPOCH_MS,
            "first_seq": {"type": "long"},
            "last_seq": {"type": "long"},
            "frames": {"type": "integer"},
            "score_mean": {"type": "float"},
            "score_max": {"type": "float"},
            "rule": {"type": "keyword"},
            "watch": {"type": "keyword"},
            "threshold": {"type": "float"},
            "calibration": {"type": "keyword"},
            "severity": {"type": "keyword"},
            "model": {
                "properties": {
                    "name": {"type": "keyword"},
                    "version": {"type": "keyword"},
                    "head_version": {"type": "long"},
                    "adapter": {"type": "long"},
                }
            },
            "emitted_at": _EPOCH_MS,
            "peak_at": _EPOCH_MS,
            "evidence": {
                "properties": {
                    "snapshot": {"type": "keyword"},
                    "thumbnail": {"type": "keyword"},
                    "clip": {"type": "keyword"},
                    "frames": {"type": "integer"},
                    "first_captured_at": _EPOCH_MS,
                    "last_captured_at": _EPOCH_MS,
                    "missing": {"type": "keyword"},
                }
            },
            "adapter": {  # adapter.promoted only (left out of other events)
                "properties": {
                    "reason": {"type": "keyword"},
                    "version": {"type": "long"},
                    "previous": {"type": "long"},
                    "scopes": {"type": "keyword"},
                    "score": {"type": "float"},
                    "champion_score": {"type": "float"},
                }
            },
        },
    }


def logs_mappings() -> dict[str, Any]:
    """ECS log lines: the fields Kibana's log views use; the rest stays in `_source`."""
    return {
        "dynamic": False,
        "properties": {
            "@timestamp": {"type": "date"},
            "message": {"type": "text"},
            "log": {"properties": {"level": {"type": "keyword"}, "logger": {"type": "keyword"}}},
            "service": {"properties": {"name": {"type": "keyword"}}},
            "error": {"properties": {"type": {"type": "keyword"}, "message": {"type": "text"}}},
        },
    }


def _template(
    name: str,
    pattern: str,
    read_alias: str,
    s: ElasticsearchSettings,
    mappings: dict[str, Any],
    family: Family,
) -> dict[str, Any]:
    # A longer (more specific) pattern gets a higher priority, so a space's template wins over a
    # family's, and a test's unique names over the defaults, instead of clashing.
    return {
        "name": name,
        "index_patterns": [pattern],
        "priority": 100 + len(pattern),
        "template": {
            "settings": {
                "number_of_shards": s.shards,
                "number_of_replicas": s.replicas,
                "codec": "best_compression",
            },
            "mappings": {**mappings, "_meta": {"managed_by": MARKER, "family": family}},
            "aliases": {read_alias: {}},
        },
        "meta": {"managed_by": MARKER},
    }


def templates(s: ElasticsearchSettings, space: EmbeddingSpace | None) -> list[dict[str, Any]]:
    """The index templates harclip puts (pure): events and logs, and the predictions template of
    `space` if given."""
    out = [
        _template(
            s.events_index, f"{s.events_index}-*", s.events_index, s, events_mappings(), "events"
        ),
        _template(s.logs_index, f"{s.logs_index}-*", s.logs_index, s, logs_mappings(), "logs"),
    ]
    if space is not None:
        name = f"{s.predictions_index}-{space.slug}"
        mappings = predictions_mappings(space.dims)
        out.append(_template(name, f"{name}-*", s.predictions_index, s, mappings, "predictions"))
    return out


@es_errors("write")
async def ensure_templates(
    es: AsyncElasticsearch, s: ElasticsearchSettings, space: EmbeddingSpace | None = None
) -> None:
    """Put the templates (idempotent); daily indices are then created by the first write of the
    day, with their alias. `ConfigError` when an alias name is taken by a plain index (an index
    from before daily indices: delete or rename it, or pick other names)."""
    if space is not None and space.dims < 1:
        raise ConfigError(f"embedding size must be >= 1, got {space.dims}")
    for family in FAMILIES:
        name = alias(s, family)
        if await es.indices.exists(index=name) and not await es.indices.exists_alias(name=name):
            raise ConfigError(
                f"Elasticsearch index {name!r} is a plain index, but harclip reads {family} "
                f"through an alias of that name over daily indices: delete or rename the index, "
                f"or set HARCLIP_ELASTICSEARCH__{family.upper()}_INDEX to another name"
            )
    for template in templates(s, space):
        await es.indices.put_index_template(**template)


@es_errors("write")
async def create_index(es: AsyncElasticsearch, index: str) -> None:
    """Create `index` from its template now (writes create it by themselves); another process
    creating it first is fine."""
    try:
        await es.indices.create(index=index)
    except BadRequestError as e:
        if reason(e).split(":")[0] != "resource_already_exists_exception":
            raise


# ----------------------------------------------------------------------------- retention


@dataclass(frozen=True, slots=True)
class DatedIndex:
    name: str
    family: Family
    day: dt.date
    docs: int
    bytes: int


def index_day(s: ElasticsearchSettings, family: Family, name: str) -> dt.date | None:
    """The day of `name` when it is a daily index of `family` by the exact grammar
    (`<alias>-<yyyy.mm.dd>`; predictions `<alias>-<space slug>-<yyyy.mm.dd>`) with a real date;
    else None (another family's, an archive, a backup, `2024.02.30`)."""
    middle = f"-{_SPACE_SLUG}" if family == "predictions" else ""
    found = re.fullmatch(f"{re.escape(alias(s, family))}{middle}-{_DATE}", name)
    if found is None:
        return None
    y, m, d = (int(x) for x in found.groups()[-3:])
    try:
        return dt.date(y, m, d)
    except ValueError:
        return None


def owned(s: ElasticsearchSettings, family: Family, info: dict[str, Any]) -> bool:
    """Whether an index (its `GET /<index>` answer: aliases, mappings) was made by harclip's
    template of `family`: its mapping's `_meta` marker, or, for indices from before the marker,
    no `_meta` at all and the family's read alias."""
    meta = (info.get("mappings") or {}).get("_meta")
    if meta is not None:
        return isinstance(meta, dict) and meta == {"managed_by": MARKER, "family": family}
    return alias(s, family) in (info.get("aliases") or {})


@es_errors("read")
async def dated_indices(es: AsyncElasticsearch, s: ElasticsearchSettings) -> list[DatedIndex]:
    """Every daily index of the three families that harclip owns (`index_day`, `owned`), oldest
    first."""
    out: list[DatedIndex] = []
    for family in FAMILIES:
        pattern = f"{alias(s, family)}-*"
        rows = await es.cat.indices(
            index=pattern, format="json", h="index,docs.count,store.size",
            bytes="b", expand_wildcards="open,closed",
        )  # fmt: skip
        body: list[dict[str, Any]] = rows.body  # type: ignore[assignment]  # format=json: rows
        days = {r["index"]: day for r in body if (day := index_day(s, family, r["index"]))}
        if not days:
            continue
        infos = await es.indices.get(
            index=pattern, features="aliases,mappings", expand_wildcards="open,closed",
            ignore_unavailable=True,
        )  # fmt: skip
        for row in body:
            name = row["index"]
            if name in days and owned(s, family, infos.body.get(name) or {}):
                out.append(DatedIndex(name, family, days[name],
                                      int(row.get("docs.count") or 0),
                                      int(row.get("store.size") or 0)))  # fmt: skip
    return sorted(out, key=lambda i: (i.day, i.name))


def expired(
    indices: list[DatedIndex], s: ElasticsearchSettings, today: dt.date
) -> list[DatedIndex]:
    """The indices whose day is older than their family's retention (kept: the last N days,
    today included)."""
    return [i for i in indices if (today - i.day).days >= retention_days(s, i.family)]


@es_errors("write")
async def delete_indices(es: AsyncElasticsearch, names: list[str]) -> None:
    """Delete whole indices (a missing one is fine: another run got there first)."""
    for name in names:
        await es.indices.delete(index=name, ignore_unavailable=True)
