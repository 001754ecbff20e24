"""Write harclip's Kibana saved objects (saved-objects.ndjson): data views for predictions,
events and logs, saved searches (a stream's history, alerts, errors by service) and a dashboard.

    python infra/kibana/build.py [--public-url https://harclip.example.com]

The events data view links each event's evidence through the API: runtime fields `snapshot_url`
and `clip_url` (the event id, where `evidence.snapshot` / `evidence.clip` is set) shown with
Kibana's URL format as `<public_url>/events/<event_id>/snapshot` and `/clip` (the same links
the webhooks carry). `--public-url` (default: `api.public_url`, HARCLIP_API__PUBLIC_URL) is
where Kibana's users reach the API; the file in the repository uses the local default.

Import with Kibana's saved objects API (or Stack Management > Saved objects > Import):

    curl -X POST 'http://127.0.0.1:5601/api/saved_objects/_import?overwrite=true' \
         -H 'kbn-xsrf: true' --form file=@infra/kibana/saved-objects.ndjson

`make validate` checks the file: the import format, unique ids, every reference resolves, and
every field used exists in the index mappings harclip puts (harclip/io/indices.py).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from harclip.config import load_settings

OUT = Path(__file__).parent / "saved-objects.ndjson"
INDEX_REF = "kibanaSavedObjectMeta.searchSourceJSON.index"
_EMPTY_SOURCE = {"query": {"query": "", "language": "kuery"}, "filter": []}


def data_view(id_: str, title: str, name: str, time_field: str) -> dict[str, Any]:
    return {
        "type": "index-pattern",
        "id": id_,
        "attributes": {"title": title, "name": name, "timeFieldName": time_field},
        "references": [],
    }


def _link(when: str) -> dict[str, Any]:
    """A keyword runtime field: the event id of documents whose `when` field is set."""
    script = f"if (doc['{when}'].size() > 0) {{ emit(doc['event_id'].value); }}"
    return {"type": "keyword", "script": {"source": script}}


def evidence_links(view: dict[str, Any], public_url: str) -> dict[str, Any]:
    """`view` (the events data view) with `snapshot_url` and `clip_url`: runtime fields shown
    as links to the API's evidence routes (Kibana's URL field format)."""
    base = public_url.rstrip("/")
    runtime, formats = {}, {}
    for name, field, kind in (("snapshot_url", "evidence.snapshot", "snapshot"),
                              ("clip_url", "evidence.clip", "clip")):  # fmt: skip
        runtime[name] = _link(field)
        formats[name] = {"id": "url", "params": {
            "type": "a", "urlTemplate": f"{base}/events/{{{{value}}}}/{kind}",
            "labelTemplate": kind, "openLinkInCurrentTab": False,
        }}  # fmt: skip
    attrs = view["attributes"] | {
        "runtimeFieldMap": json.dumps(runtime, sort_keys=True),
        "fieldFormatMap": json.dumps(formats, sort_keys=True),
    }
    return view | {"attributes": attrs}


def search(
    id_: str, title: str, view: str, kql: str, columns: list[str], sort: list[list[str]]
) -> dict[str, Any]:
    source = {
        "query": {"query": kql, "language": "kuery"},
        "filter": [],
        "indexRefName": INDEX_REF,
    }
    return {
        "type": "search",
        "id": id_,
        "attributes": {
            "title": title,
            "description": "",
            "columns": columns,
            "sort": sort,
            "kibanaSavedObjectMeta": {"searchSourceJSON": json.dumps(source)},
        },
        "references": [{"name": INDEX_REF, "type": "index-pattern", "id": view}],
    }


def dashboard(id_: str, title: str, searches: list[str]) -> dict[str, Any]:
    panels = [
        {
            "type": "search",
            "panelIndex": str(i + 1),
            "gridData": {"x": 0, "y": 15 * i, "w": 48, "h": 15, "i": str(i + 1)},
            "embeddableConfig": {},
            "panelRefName": f"panel_{i}",
        }
        for i in range(len(searches))
    ]
    return {
        "type": "dashboard",
        "id": id_,
        "attributes": {
            "title": title,
            "description": "Alerts, a stream's history and errors by service",
            "panelsJSON": json.dumps(panels),
            "optionsJSON": json.dumps({"useMargins": True, "hidePanelTitles": False}),
            "timeRestore": True,
            "timeFrom": "now-24h",
            "timeTo": "now",
            "kibanaSavedObjectMeta": {"searchSourceJSON": json.dumps(_EMPTY_SOURCE)},
        },
        "references": [
            {"name": f"panel_{i}", "type": "search", "id": s} for i, s in enumerate(searches)
        ],
    }


def objects(public_url: str) -> list[dict[str, Any]]:
    events = data_view("harclip-events", "harclip-events", "harclip events", "emitted_at")
    return [
        data_view("harclip-predictions", "harclip-predictions", "harclip predictions",
                  "captured_at"),
        evidence_links(events, public_url),
        *OBJECTS,
    ]  # fmt: skip


OBJECTS = [
    data_view("harclip-logs", "harclip-logs", "harclip service logs", "@timestamp"),
    search(
        "harclip-stream-history", "harclip: a stream's history", "harclip-predictions",
        'stream_id : "cam1"', ["stream_id", "label", "score", "model.name"],
        [["captured_at", "desc"]],
    ),
    search(
        "harclip-alerts", "harclip: alerts", "harclip-events", 'type : "alert"',
        ["stream_id", "rule", "severity", "label", "score_max", "start", "snapshot_url",
         "clip_url"], [["emitted_at", "desc"]],
    ),
    search(
        "harclip-errors-by-service", "harclip: errors by service", "harclip-logs",
        'log.level : "error" or log.level : "critical"',
        ["service.name", "log.logger", "message"], [["@timestamp", "desc"]],
    ),
    dashboard("harclip-overview", "harclip overview",
              ["harclip-alerts", "harclip-stream-history", "harclip-errors-by-service"]),
]  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--public-url", default=load_settings().api.public_url,
                   help="where Kibana's users reach the API (the evidence links)")  # fmt: skip
    args = p.parse_args(argv)
    OUT.write_text("".join(json.dumps(o, sort_keys=True) + "\n"
                           for o in objects(args.public_url)))  # fmt: skip
    print(OUT)


if __name__ == "__main__":
    main()
