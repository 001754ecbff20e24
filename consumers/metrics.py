"""The worker's Prometheus metrics (DESIGN.md names: `harclip_` prefix, seconds and bytes), in a
registry of its own so several workers can share one test process."""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterable, Mapping

from aiokafka.structs import TopicPartition
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from harclip.control import ControlMetrics

_LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
_SCORE_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0)


class WorkerMetrics:
    """Counters, gauges and histograms of one worker."""

    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.consumed = Counter(
            "harclip_frames_consumed", "records read from Kafka", ["topic"], registry=r
        )
        self.predicted = Counter(
            "harclip_frames_predicted", "frames with a Prediction written to every sink",
            registry=r,
        )  # fmt: skip
        # prediction drift (infra/monitoring): top-1 labels (bounded by the label set) and scores
        self.labels = Counter(
            "harclip_predicted_labels", "predictions by top-1 label", ["label"], registry=r
        )
        self.score = Histogram(
            "harclip_prediction_score", "top-1 score of each prediction",
            buckets=_SCORE_BUCKETS, registry=r,
        )  # fmt: skip
        self.dropped = Counter(
            "harclip_frames_dropped", "live frames dropped unprocessed", ["reason"], registry=r
        )
        self.failed = Counter(
            "harclip_frames_failed", "frames sent to the dead-letter topic", ["reason"], registry=r
        )
        self.batch_size = Histogram(
            "harclip_batch_size", "frames per engine batch", buckets=_BATCH_BUCKETS, registry=r
        )
        self.queue_latency = _latency(r, "harclip_queue_latency_seconds", "capture -> batch start")
        self.infer_latency = _latency(
            r, "harclip_infer_latency_seconds", "engine + head, per batch"
        )
        self.e2e_latency = _latency(
            r, "harclip_e2e_latency_seconds", "capture -> every sink acknowledged"
        )
        self.lag = Gauge(
            "harclip_consumer_lag", "records behind the log end, per topic", ["topic"], registry=r
        )
        self.sink_errors = Counter(
            "harclip_sink_errors", "failed sink writes (retried)", ["sink"], registry=r
        )
        self.dlq_lost = Counter(
            "harclip_dlq_lost",
            "dead-letter records Kafka refused for good (logged, committed)",
            registry=r,
        )
        self.control = ControlMetrics(r)
        self.ready = Gauge("harclip_ready", "1 when the worker is ready", registry=r)
        self._served: frozenset[str] | None = None  # labels of the head in use
        self._counted: set[str] = set()  # labels with a harclip_predicted_labels series
        self._counters: dict[str, Counter] | None = None  # by name, for total()

    def serve_labels(self, labels: Iterable[str]) -> None:
        """The head in use now predicts `labels`: drop the `harclip_predicted_labels` series of
        every other label, so label sets come and go without series piling up."""
        self._served = frozenset(labels)
        for label in self._counted - self._served:
            self.labels.remove(label)
        self._counted &= self._served

    def count_label(self, label: str) -> None:
        """One prediction of top-1 `label`; one of a head already replaced (a batch in flight
        across a swap) is not counted, so no series of a label no longer served comes back."""
        if self._served is None or label in self._served:
            self.labels.labels(label).inc()
            self._counted.add(label)

    def record_lag(
        self,
        assigned: Iterable[TopicPartition],
        log_end: Callable[[TopicPartition], int | None],
        committed: Mapping[TopicPartition, int],
    ) -> None:
        """Records between this worker's last commit and the log end, per topic."""
        lag: collections.Counter[str] = collections.Counter()
        for tp in assigned:
            end, done = log_end(tp), committed.get(tp)
            if end is not None and done is not None:
                lag[tp.topic] += max(0, end - done)
        for topic, n in lag.items():
            self.lag.labels(topic).set(n)

    def total(self, name: str) -> float:
        """The sum of counter `name` (e.g. "harclip_frames_failed") over all its labels (0 for
        a name that is no counter here). Collects that counter only: tests and benches call it
        after every batch, and collecting the whole registry (histograms) costs more."""
        if self._counters is None:
            self._counters = {
                m.name: c
                for c in [*vars(self).values(), *vars(self.control).values()]
                if isinstance(c, Counter)
                for m in c.describe()
            }  # fmt: skip
        counter = self._counters.get(name)
        if counter is None:
            return 0.0
        return sum(
            sample.value
            for metric in counter.collect()
            for sample in metric.samples
            if sample.name == f"{name}_total"
        )


def _latency(registry: CollectorRegistry, name: str, doc: str) -> Histogram:
    """A latency histogram in seconds, 5 ms to 30 s."""
    return Histogram(name, doc, buckets=_LATENCY_BUCKETS_S, registry=registry)
