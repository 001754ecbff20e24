"""The sections of the events app (`stream/`, `HARCLIP_STREAM__*`) and the live view (`ui/`,
`HARCLIP_UI__*`)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator

from harclip.config.base import _Section


class StreamSettings(_Section):
    """The events app (`stream/`, faust-streaming): smoothing, segments, rules, outputs."""

    app_id: str = Field("harclip-stream", description="Faust app id = Kafka consumer group")
    store: Literal["rocksdb", "memory"] = Field(
        "rocksdb", description="table store; the changelog topics are the truth either way"
    )
    datadir: Path = Field(Path("state/stream"), description="Faust's local data (RocksDB)")
    host: str = "127.0.0.1"
    port: int = Field(9310, ge=0, le=65535, description="/health /ready /metrics; 0: any free")
    rules: Path | None = Field(None, description="alert rules YAML (HARCLIP_STREAM__RULES)")
    smoothing_ms: float = Field(
        400.0, gt=0, description="EMA time constant of the class scores, ms of capture time"
    )
    min_hold_ms: int = Field(600, ge=0, description="a new label must lead this long, ms")
    min_segment_ms: int = Field(1000, ge=0, description="shorter segments are merged, ms")
    idle_timeout_s: float = Field(10.0, gt=0, description="no prediction this long: stream.down")
    events_maxlen: int = Field(1000, ge=10, description="cap of each stream's Redis events")
    commit_interval_s: float = Field(1.0, gt=0, description="Kafka offset commits, seconds")
    standby_replicas: int = Field(1, ge=0, description="standby copies of each table partition")
    session_timeout_s: float = Field(
        30.0, ge=6, le=300, description="a silent app worker leaves the group after this, s"
    )
    stats_expires_s: int = Field(7200, ge=3600, description="windowed statistics kept, seconds")
    track_batch: int = Field(500, ge=1, description="predictions applied per state write")
    track_wait_ms: float = Field(10.0, gt=0, description="state flush check interval, ms")
    fetch_wait_ms: int = Field(
        100, ge=1, le=1500,
        description="longest a Kafka fetch waits for data (Faust's 1500 holds back live records)",
    )  # fmt: skip
    sink_batch: int = Field(500, ge=1, description="events per Redis/Elasticsearch write")
    sink_wait_ms: float = Field(20.0, ge=0, description="wait for more events before a write")
    gc_freeze: bool = Field(
        False,
        description="freeze start-up objects once started (stream/gctune.py; measured: "
        "more CPU per prediction here, so off)",
    )
    webhooks: tuple[str, ...] = Field((), description="URLs that alerts are POSTed to")
    webhook_timeout_s: float = Field(5.0, gt=0)
    webhook_retries: int = Field(3, ge=0, description="retries after the first try (backoff)")
    webhook_queue: int = Field(1000, ge=1, description="undelivered alerts kept; oldest dropped")
    webhook_thumbnail: bool = Field(
        False, description="alerts carry their thumbnail inline (base64 JPEG; needs evidence)"
    )
    webhook_thumbnail_wait_s: float = Field(
        10.0, ge=0, le=120,
        description="a delivery waits at most this long after the alert for its thumbnail, s",
    )  # fmt: skip
    webhook_thumbnail_max_bytes: int = Field(
        32_768, ge=1024, le=262_144, description="a larger thumbnail is left out of the body"
    )
    webhook_allow_loopback: bool = Field(
        False, description="tests only: let webhooks reach 127.0.0.1/::1 (private stays refused)"
    )
    evidence: bool = Field(
        True, description="write a snapshot and a clip of each segment and alert (needs objects)"
    )
    pre_roll_s: float = Field(3.0, ge=0, le=60, description="clip starts this long before, s")
    post_roll_s: float = Field(2.0, ge=0, le=60, description="clip ends this long after, s")
    clip_max_s: float = Field(
        60.0, ge=2, le=600, description="longer clips keep their first and last halves, s"
    )
    clip_codec: Literal["h264", "vp8"] = Field(
        "h264", description="clips: H.264 in MP4 (cheap) or VP8 in WebM (browsers without H.264)"
    )
    clip_preset: Literal["ultrafast", "superfast", "veryfast"] = Field(
        "superfast",
        description="libx264 preset of H.264 clips: ultrafast takes about 0.6x superfast's CPU "
        "at the same bitrate, with a lower picture quality",
    )  # fmt: skip
    evidence_wait_s: float = Field(
        1.0, ge=0, le=60, description="margin after end + post-roll before frames are read, s"
    )
    evidence_concurrency: int = Field(4, ge=1, le=64, description="events built at once")
    evidence_processes: int = Field(
        1, ge=0, le=16,
        description="worker processes that read frames and build and write evidence "
        "(0: in the app's own process, the encoder in threads)",
    )  # fmt: skip
    evidence_nice: int = Field(10, ge=0, le=19, description="nice of the evidence processes")
    evidence_defer_lag_s: float = Field(
        5.0, ge=0, le=3600,
        description="evidence builds wait while the agents are this far behind, s (0: never)",
    )  # fmt: skip
    evidence_defer_max_s: float = Field(
        120.0, ge=0, le=3600,
        description="the agents' head start per episode of lag: builds wait at most this long "
        "from the first that waited (and at most half the frames' retention after the "
        "window's start), s",
    )  # fmt: skip
    thumbnail_px: int = Field(160, ge=16, le=1024, description="thumbnail's longest side")


class UiSettings(_Section):
    """The Streamlit live view (`ui/`): where the API is, and what else it reads."""

    api_url: str = Field("http://127.0.0.1:8000", description="the harclip API the UI calls")
    api_key: SecretStr | None = Field(
        None, description="sent as X-API-Key; writes (labels, rules, webcam ingest) need admin"
    )
    timeout_s: float = Field(10.0, gt=0, description="per API request, seconds")
    port: int = Field(8501, ge=1, le=65535, description="`python -m ui` serves here")
    refresh_s: float = Field(1.0, ge=0.2, description="live views refresh this often, seconds")
    worker_metrics_url: str = Field(
        "http://127.0.0.1:9300/metrics", description="an inference worker's Prometheus metrics"
    )
    events_metrics_url: str = Field(
        "http://127.0.0.1:9310/metrics", description="the events app's Prometheus metrics"
    )
    report: Path | None = Field(
        None,
        description="a training report folder (metrics.json) or a bundle folder (manifest.json "
        "metrics) shown on the Performance page",
    )

    @field_validator("api_url", "worker_metrics_url", "events_metrics_url")
    @classmethod
    def _check_http(cls, v: str) -> str:
        if urlsplit(v).scheme not in ("http", "https"):
            raise ValueError(f"expected http(s)://host:port, got {v!r}")
        return v
