"""The worker's metrics keep series only for the labels of the head in use: ten label sets one
after another leave the series of the last one, not of all ten."""

from __future__ import annotations

from consumers.metrics import WorkerMetrics


def _label_series(m: WorkerMetrics) -> set[str]:
    return {
        s.labels["label"]
        for metric in m.registry.collect()
        if metric.name == "harclip_predicted_labels"
        for s in metric.samples
        if s.name == "harclip_predicted_labels_total"
    }


def test_series_of_labels_no_longer_served_are_dropped() -> None:
    m = WorkerMetrics()
    for i in range(10):
        labels = [f"set{i}-label{j}" for j in range(200)]
        m.serve_labels(labels)
        for label in labels:
            m.count_label(label)
        assert _label_series(m) == set(labels)
    m.count_label("set3-label0")  # a batch of an old head, in flight across the swap
    assert _label_series(m) == {f"set9-label{j}" for j in range(200)}


def test_labels_kept_across_a_swap_keep_their_counts() -> None:
    m = WorkerMetrics()
    m.serve_labels(["running", "sitting"])
    m.count_label("running")
    m.count_label("running")
    m.serve_labels(["running", "cycling"])
    m.count_label("cycling")
    assert _label_series(m) == {"running", "cycling"}
    assert m.registry.get_sample_value("harclip_predicted_labels_total", {"label": "running"}) == 2


def test_total_sums_one_counter_over_its_labels() -> None:
    m = WorkerMetrics()
    m.failed.labels("malformed").inc(2)
    m.failed.labels("undecodable").inc()
    m.predicted.inc(5)
    m.control.refused.labels("head", "bad").inc()
    m.score.observe(0.5)  # histograms are not collected
    assert m.total("harclip_frames_failed") == 3
    assert m.total("harclip_frames_predicted") == 5
    assert m.total("harclip_control_refused") == 1
    assert m.total("harclip_frames_dropped") == 0  # no series yet
    for name in ("harclip_frames_failed_total", "harclip_consumer_lag", "missing"):
        assert m.total(name) == 0  # not a counter's name
    m.predicted.inc()
    assert m.total("harclip_frames_predicted") == 6
