"""The events app's Prometheus metrics (`harclip_` prefix, base units), in a registry of its own."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from stream.evidence.pace import Behind
from stream.gctune import GcPauses

_LAG_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class StreamMetrics:
    """Counters, gauges and histograms of one app worker."""

    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.predictions = Counter(
            "harclip_stream_predictions", "predictions applied to a stream's state", registry=r
        )
        self.ignored = Counter(
            "harclip_stream_predictions_ignored",
            "predictions ignored: stale (seq and captured_at not newer), malformed, or "
            "redelivered (a record of Kafka this worker applied before)",
            ["reason"], registry=r,
        )  # fmt: skip
        self.events = Counter(
            "harclip_stream_events", "events emitted to harclip.events", ["type"], registry=r
        )
        self.outputs = Counter(
            "harclip_stream_outputs_written", "events written to Redis and Elasticsearch",
            registry=r,
        )  # fmt: skip
        self.sink_errors = Counter(
            "harclip_stream_sink_errors", "failed output writes (retried)", ["sink"], registry=r
        )
        self.alerts_delivered = Counter(
            "harclip_stream_alert_deliveries", "alerts POSTed to a webhook (2xx)", registry=r
        )
        self.alerts_failed = Counter(
            "harclip_stream_alert_delivery_failures",
            "webhook deliveries given up (after retries), refused by the URL guard or dropped "
            "from a full queue", ["reason"], registry=r,
        )  # fmt: skip
        self.lag = Histogram(
            "harclip_stream_processing_lag_seconds",
            "a prediction's arrival on Kafka (record timestamp) -> applied to its stream",
            buckets=_LAG_BUCKETS_S, registry=r,
        )  # fmt: skip
        self.behind = Behind()  # the last lag, for the evidence step (stream/evidence/pace.py)
        Gauge(
            "harclip_stream_behind_seconds",
            "the last prediction applied: its arrival on Kafka -> applied (0 when none for 2 s)",
            registry=r,
        ).set_function(self.behind.lag_s)
        self.reread = Counter(
            "harclip_stream_records_reread",
            "records an agent did not get from Faust's consumer (a rebalance) and read from "
            "Kafka directly", ["agent"], registry=r,
        )  # fmt: skip
        self.gc_pauses = GcPauses(r)  # garbage collections, timed (stream/gctune.py)
        self.rules = Gauge("harclip_stream_rules", "alert rules in force", registry=r)
        self.rules_refused = Counter(
            "harclip_stream_rules_refused", "rules changes refused as invalid", registry=r
        )
        self.streams = Gauge(
            "harclip_stream_streams", "streams whose partitions this worker owns", registry=r
        )
        self.ready = Gauge("harclip_ready", "1 when the app is ready", registry=r)
        self._evidence(r)

    def _evidence(self, r: CollectorRegistry) -> None:
        """The evidence step's (stream/evidence/)."""
        self.evidence_written = Counter(
            "harclip_stream_evidence_written", "events republished with their evidence objects",
            ["type"], registry=r,
        )  # fmt: skip
        self.evidence_missing = Counter(
            "harclip_stream_evidence_missing",
            "events republished without evidence: frames_expired, no_frames, failed",
            ["reason"], registry=r,
        )  # fmt: skip
        self.evidence_errors = Counter(
            "harclip_stream_evidence_errors",
            "evidence tries that failed for now (object store or Kafka; retried)", registry=r,
        )  # fmt: skip
        self.evidence_corrupt = Counter(
            "harclip_stream_evidence_corrupt_frames", "frames skipped: they do not decode",
            registry=r,
        )  # fmt: skip
        self.evidence_backlog = Gauge(
            "harclip_stream_evidence_backlog", "events read whose evidence is not yet done",
            registry=r,
        )  # fmt: skip
        self.evidence_clip_seconds = Histogram(
            "harclip_stream_evidence_clip_seconds", "time to build one clip (decode + encode)",
            buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0), registry=r,
        )  # fmt: skip
        self.evidence_deferring = Gauge(
            "harclip_stream_evidence_deferring",
            "evidence builds waiting because the agents are behind (EVIDENCE_DEFER_LAG_S)",
            registry=r,
        )  # fmt: skip
        self.evidence_deferred = Counter(
            "harclip_stream_evidence_deferred_seconds",
            "seconds evidence builds waited for the agents to catch up", registry=r,
        )  # fmt: skip
