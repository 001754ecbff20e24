"""Write harclip's Grafana dashboards (dashboards/*.json) from the compact panel lists below.

    python infra/monitoring/grafana/build.py

The JSON files are committed and provisioned as they are (provisioning/, docker-compose.yml);
`make validate` checks their shape, parses every query with promtool and checks that every metric
they read is exported by the worker, the API or the events app (or recorded by the rules).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

OUT = Path(__file__).parent / "dashboards"
# the same files for Kubernetes (a ConfigMap the Grafana sidecar loads; kustomize reads files
# only below its kustomization, so k8s/base keeps a copy that `make validate` compares)
K8S_COPY = Path(__file__).parents[3] / "k8s" / "base" / "dashboards"
DS = {"type": "prometheus", "uid": "prometheus"}

# (title, kind, unit, [(legend, expr), ...]); kind: "ts" time series | "stat"
Panel = tuple[str, str, str, list[tuple[str, str]]]


def _p99(metric: str, by: str = "") -> str:
    group = f"le{', ' + by if by else ''}"
    return f"histogram_quantile(0.99, sum by ({group}) (rate({metric}_bucket[$__rate_interval])))"


def _p50(metric: str) -> str:
    return f"histogram_quantile(0.5, sum by (le) (rate({metric}_bucket[$__rate_interval])))"


DASHBOARDS: dict[str, tuple[str, list[Panel]]] = {
    "harclip-overview": ("harclip / pipeline overview", [
        ("Workers ready", "stat", "none", [("ready", 'sum(harclip_ready{job=~".*worker.*"})')]),
        ("Frames predicted /s", "stat", "ops", [("", "harclip:frames_predicted:rate5m")]),
        ("p99 end-to-end latency", "stat", "s", [("", "harclip:e2e_latency_seconds:p99_5m")]),
        ("Alerts firing", "stat", "none",
         [("", 'count(ALERTS{alertstate="firing", alertname=~"Harclip.*"}) or vector(0)')]),
        ("Frames consumed /s by topic", "ts", "ops",
         [("{{topic}}", "harclip:frames_consumed:rate5m")]),
        ("Dropped and dead-lettered", "ts", "percentunit", [
            ("dropped (share of consumed)", "harclip:frames_dropped:ratio5m"),
            ("dead-lettered /s", "harclip:frames_failed:rate5m"),
        ]),
        ("End-to-end latency", "ts", "s", [
            ("p50", _p50("harclip_e2e_latency_seconds")),
            ("p99", _p99("harclip_e2e_latency_seconds")),
        ]),
        ("Consumer lag by topic", "ts", "short", [("{{topic}}", "harclip:consumer_lag:sum")]),
        ("API requests /s by status", "ts", "reqps",
         [("{{status}}", "sum by (status) (harclip:http_requests:rate5m)")]),
        ("API 5xx share", "ts", "percentunit", [("5xx", "harclip:http_5xx:ratio5m")]),
        ("Events /s by type", "ts", "ops",
         [("{{type}}", "sum by (type) (rate(harclip_stream_events_total[$__rate_interval]))")]),
        ("Top-1 label drift (total variation vs 7 days)", "ts", "none",
         [("distance", "harclip:label_drift:tvd1h")]),
        ("Online accuracy (feedback): agreement over the last hour", "ts", "percentunit", [
            ("all", "harclip:feedback_agreement_all:1h"),
            ("{{stream}} / {{label}}", "harclip:feedback_agreement:1h"),
        ]),
    ]),
    "harclip-worker": ("harclip / inference worker", [
        ("Frames consumed /s by pod", "ts", "ops",
         [("{{pod}}", "sum by (pod) (rate(harclip_frames_consumed_total[$__rate_interval]))")]),
        ("Batch size (mean)", "ts", "short", [(
            "{{pod}}",
            "sum by (pod) (rate(harclip_batch_size_sum[$__rate_interval]))"
            " / sum by (pod) (rate(harclip_batch_size_count[$__rate_interval]))",
        )]),
        ("Latency p99: queue, infer, end-to-end", "ts", "s", [
            ("queue", _p99("harclip_queue_latency_seconds")),
            ("infer (per batch)", _p99("harclip_infer_latency_seconds")),
            ("end-to-end", _p99("harclip_e2e_latency_seconds")),
        ]),
        ("Dropped /s by reason", "ts", "ops",
         [("{{reason}}",
           "sum by (reason) (rate(harclip_frames_dropped_total[$__rate_interval]))")]),
        ("Dead-lettered /s by reason", "ts", "ops",
         [("{{reason}}", "sum by (reason) (rate(harclip_frames_failed_total[$__rate_interval]))")]),
        ("Sink errors /s", "ts", "ops", [
            ("{{sink}}", "sum by (sink) (rate(harclip_sink_errors_total[$__rate_interval]))"),
            ("DLQ lost", "sum(rate(harclip_dlq_lost_total[$__rate_interval]))"),
        ]),
        ("Head version in use", "ts", "none", [("{{pod}}", "max by (pod) (harclip_head_version)")]),
        ("Control records refused /s", "ts", "ops", [(
            "{{key}} {{reason}}",
            "sum by (key, reason) (rate(harclip_control_refused_total[$__rate_interval]))",
        )]),
        ("Top-1 label share (last hour)", "ts", "percentunit",
         [("{{label}}", "harclip:label_share:rate1h")]),
        ("Top-1 label share (7-day baseline)", "ts", "percentunit",
         [("{{label}}", "harclip:label_share:baseline7d")]),
        ("Mean top-1 score", "ts", "percentunit", [
            ("last hour", "harclip:score_mean:rate1h"),
            ("7-day baseline", "harclip:score_mean:baseline7d"),
        ]),
        ("Top-1 score distribution", "ts", "short", [(
            "le {{le}}",
            "sum by (le) (increase(harclip_prediction_score_bucket[$__rate_interval]))",
        )]),
    ]),
    "harclip-api": ("harclip / API", [
        ("Requests /s by route", "ts", "reqps",
         [("{{route}}", "sum by (route) (harclip:http_requests:rate5m)")]),
        ("Request duration p99 by route", "ts", "s",
         [("{{route}}", _p99("harclip_http_request_duration_seconds", "route"))]),
        ("In flight", "ts", "short", [("", "sum(harclip_http_requests_in_flight)")]),
        ("5xx share", "ts", "percentunit", [("5xx", "harclip:http_5xx:ratio5m")]),
        ("Images predicted /s and batch size", "ts", "short", [
            ("images /s", "sum(rate(harclip_api_images_total[$__rate_interval]))"),
            ("mean batch", "sum(rate(harclip_api_batch_size_sum[$__rate_interval]))"
                           " / sum(rate(harclip_api_batch_size_count[$__rate_interval]))"),
        ]),
        ("WebSocket clients", "ts", "short", [("{{kind}}", "sum by (kind) (harclip_ws_clients)")]),
        ("WebSocket messages /s", "ts", "ops", [
            ("sent", "sum(rate(harclip_ws_messages_sent_total[$__rate_interval]))"),
            ("dropped (slow clients)",
             "sum(rate(harclip_ws_messages_dropped_total[$__rate_interval]))"),
            ("ingested frames", "sum(rate(harclip_api_frames_ingested_total[$__rate_interval]))"),
        ]),
        ("API replicas scraped", "stat", "none", [("", 'count(up{job=~".*api.*"} == 1)')]),
    ]),
    "harclip-events": ("harclip / events app", [
        ("Predictions applied /s", "ts", "ops", [
            ("applied", "sum(rate(harclip_stream_predictions_total[$__rate_interval]))"),
            ("ignored {{reason}}",
             "sum by (reason) (rate(harclip_stream_predictions_ignored_total[$__rate_interval]))"),
        ]),
        ("Events /s by type", "ts", "ops",
         [("{{type}}", "sum by (type) (rate(harclip_stream_events_total[$__rate_interval]))")]),
        ("Outputs written /s and sink errors", "ts", "ops", [
            ("written", "sum(rate(harclip_stream_outputs_written_total[$__rate_interval]))"),
            ("errors {{sink}}",
             "sum by (sink) (rate(harclip_stream_sink_errors_total[$__rate_interval]))"),
        ]),
        ("Processing lag p99", "ts", "s", [("p99", _p99("harclip_stream_processing_lag_seconds"))]),
        ("Alert webhooks", "ts", "ops", [
            ("delivered", "sum(rate(harclip_stream_alert_deliveries_total[$__rate_interval]))"),
            ("failed {{reason}}", "sum by (reason) "
             "(rate(harclip_stream_alert_delivery_failures_total[$__rate_interval]))"),
        ]),
        ("Rules in force / refused", "ts", "short", [
            ("rules", "max(harclip_stream_rules)"),
            ("refused", "sum(increase(harclip_stream_rules_refused_total[1h]))"),
        ]),
        ("Streams per app worker", "ts", "short",
         [("{{pod}}", "sum by (pod) (harclip_stream_streams)")]),
    ]),
    "harclip-kafka-lag": ("harclip / Kafka lag and autoscaling", [
        ("Worker group lag by topic", "ts", "short", [("{{topic}}", "harclip:consumer_lag:sum")]),
        ("Lag by worker", "ts", "short",
         [("{{pod}} {{topic}}", "sum by (pod, topic) (harclip_consumer_lag)")]),
        ("Lag change per minute", "ts", "short",
         [("{{topic}}", "sum by (topic) (deriv(harclip_consumer_lag[5m])) * 60")]),
        ("In vs out (frames /s)", "ts", "ops", [
            ("consumed", "sum(harclip:frames_consumed:rate5m)"),
            ("predicted", "harclip:frames_predicted:rate5m"),
        ]),
        ("Worker replicas (KEDA)", "ts", "short", [
            ("ready", 'sum(kube_deployment_status_replicas_ready{deployment="harclip-worker"})'),
            ("desired", 'sum(kube_deployment_spec_replicas{deployment="harclip-worker"})'),
        ]),
        ("KEDA scaler metric (lag per trigger)", "ts", "short", [(
            "{{scaler}} {{metric}}",
            'sum by (scaler, metric) (keda_scaler_metrics_value{scaledObject="harclip-worker"})',
        )]),
        ("Events app processing lag p99", "ts", "s",
         [("p99", _p99("harclip_stream_processing_lag_seconds"))]),
    ]),
}  # fmt: skip


def panel(
    i: int, title: str, kind: str, unit: str, targets: list[tuple[str, str]]
) -> dict[str, Any]:
    width, height = (6, 4) if kind == "stat" else (12, 8)
    return {
        "id": i + 1,
        "type": "stat" if kind == "stat" else "timeseries",
        "title": title,
        "datasource": DS,
        "gridPos": {"h": height, "w": width, "x": 0, "y": 0},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {},
        "targets": [
            {"refId": chr(ord("A") + j), "datasource": DS, "expr": expr, "legendFormat": legend}
            for j, (legend, expr) in enumerate(targets)
        ],
    }


def _layout(panels: list[dict[str, Any]]) -> None:
    x = y = row_h = 0
    for p in panels:
        w, h = p["gridPos"]["w"], p["gridPos"]["h"]
        if x + w > 24:
            x, y, row_h = 0, y + row_h, 0
        p["gridPos"].update(x=x, y=y)
        x, row_h = x + w, max(row_h, h)


def dashboard(uid: str, title: str, panels: list[Panel]) -> dict[str, Any]:
    built = [panel(i, *p) for i, p in enumerate(panels)]
    _layout(built)
    return {
        "uid": uid,
        "title": title,
        "tags": ["harclip"],
        "timezone": "utc",
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "refresh": "30s",
        "time": {"from": "now-3h", "to": "now"},
        "templating": {"list": []},
        "annotations": {"list": []},
        "links": [
            {"title": "harclip", "type": "dashboards", "tags": ["harclip"], "asDropdown": True}
        ],
        "panels": built,
    }


def main() -> None:
    for folder in (OUT, K8S_COPY):
        folder.mkdir(exist_ok=True)
        for uid, (title, panels) in DASHBOARDS.items():
            text = json.dumps(dashboard(uid, title, panels), indent=2) + "\n"
            (folder / f"{uid}.json").write_text(text)
            print(folder / f"{uid}.json")


if __name__ == "__main__":
    main()
