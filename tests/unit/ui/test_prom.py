"""Prometheus text read into totals, histograms with quantiles, and rates between two scrapes."""

from __future__ import annotations

import pytest

from ui import prom

TEXT = """\
# HELP harclip_frames_dropped_total live frames dropped unprocessed
# TYPE harclip_frames_dropped_total counter
harclip_frames_dropped_total{reason="too_old"} 4.0
harclip_frames_dropped_total{reason="decode"} 1.0
# HELP harclip_consumer_lag records behind the log end, per topic
# TYPE harclip_consumer_lag gauge
harclip_consumer_lag{topic="harclip.frames"} 7.0
# HELP harclip_infer_latency_seconds engine + head, per batch
# TYPE harclip_infer_latency_seconds histogram
harclip_infer_latency_seconds_bucket{le="0.01"} 2.0
harclip_infer_latency_seconds_bucket{le="0.1"} 8.0
harclip_infer_latency_seconds_bucket{le="1.0"} 10.0
harclip_infer_latency_seconds_bucket{le="+Inf"} 10.0
harclip_infer_latency_seconds_count 10.0
harclip_infer_latency_seconds_sum 0.5
"""


def test_totals_and_labels() -> None:
    m = prom.parse(TEXT)
    assert m.total("harclip_frames_dropped_total") == 5
    assert m.total("harclip_frames_dropped_total", reason="decode") == 1
    assert m.by_label("harclip_frames_dropped_total", "reason") == {"too_old": 4, "decode": 1}
    assert m.total("harclip_consumer_lag") == 7
    assert m.total("missing") is None


def test_histogram_quantiles_as_promql_estimates_them() -> None:
    h = prom.parse(TEXT).histogram("harclip_infer_latency_seconds")
    assert h is not None and h.count == 10 and h.mean == pytest.approx(0.05)
    assert h.quantile(0.1) == pytest.approx(0.005)  # inside the first bucket, from 0
    assert h.quantile(0.5) == pytest.approx(0.01 + 0.09 * 3 / 6)
    assert h.quantile(1.0) == pytest.approx(1.0)
    assert h.per_bucket() == [("≤0.01", 2), ("≤0.1", 6), ("≤1", 2), ("+Inf", 0)]
    assert prom.Histogram((), 0, 0).quantile(0.5) is None


def test_rate_needs_two_scrapes_and_no_restart() -> None:
    old = prom.parse(TEXT, at_s=10.0)
    new = prom.parse(TEXT.replace("4.0", "24.0"), at_s=12.0)
    assert prom.rate(new, old, "harclip_frames_dropped_total") == pytest.approx(10.0)
    assert prom.rate(new, None, "harclip_frames_dropped_total") is None
    assert prom.rate(old, new, "harclip_frames_dropped_total") is None  # went back: restarted


def test_not_prometheus_text_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        prom.parse("<html>not metrics</html>\n")
