"""Write harclip's Kibana saved objects (saved-objects.ndjson): data views for predictions,
events and logs, saved searches (a stream's history, alerts, errors by service) and a dashboard.

    python infra/kibana/build.py

Import with Kibana's saved objects API (or Stack Management > Saved objects > Import):

    curl -X POST 'http://127.0.0.1:5601/api/saved_objects/_import?overwrite=true' \
         -H 'kbn-xsrf: true' --form file=@infra/kibana/saved-objects.ndjson

`make validate` checks the file: the import format, unique ids, every reference resolves, and
every field used exists in the index mappings harclip puts (harclip/io/indices.py).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

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


OBJECTS = [
    data_view("harclip-predictions", "harclip-predictions", "harclip predictions", "captured_at"),
    data_view("harclip-events", "harclip-events", "harclip events", "emitted_at"),
    data_view("harclip-logs", "harclip-logs", "harclip service logs", "@timestamp"),
    search(
        "harclip-stream-history", "harclip: a stream's history", "harclip-predictions",
        'stream_id : "cam1"', ["stream_id", "label", "score", "model.name"],
        [["captured_at", "desc"]],
    ),
    search(
        "harclip-alerts", "harclip: alerts", "harclip-events", 'type : "alert"',
        ["stream_id", "rule", "severity", "label", "score_max", "start"], [["emitted_at", "desc"]],
    ),
    search(
        "harclip-errors-by-service", "harclip: errors by service", "harclip-logs",
        'log.level : "error" or log.level : "critical"',
        ["service.name", "log.logger", "message"], [["@timestamp", "desc"]],
    ),
    dashboard("harclip-overview", "harclip overview",
              ["harclip-alerts", "harclip-stream-history", "harclip-errors-by-service"]),
]  # fmt: skip


def main() -> None:
    OUT.write_text("".join(json.dumps(o, sort_keys=True) + "\n" for o in OBJECTS))
    print(OUT)


if __name__ == "__main__":
    main()
