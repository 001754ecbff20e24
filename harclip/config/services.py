"""The operational sections: the worker's /health /ready /metrics (`HARCLIP_METRICS__*`) and
the local services of `harclip services` (`HARCLIP_SERVICES__*`)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from harclip.config.base import _Section


class MetricsSettings(_Section):
    enabled: bool = Field(True, description="serve the worker's /health /ready /metrics")
    port: int = Field(9300, ge=0, le=65535, description="worker /health /ready /metrics; 0: any")
    host: str = "127.0.0.1"


class ServicesSettings(_Section):
    """The local Kafka / Redis / Elasticsearch / object store that `harclip services up` runs
    (tests, demo)."""

    state_dir: Path = Path("state")
    cache_dir: Path | None = Field(None, description="downloads; default: <state_dir>/cache")
    kafka_version: str = "4.1.1"
    kafka_controller_port: int = Field(9093, ge=1, le=65535)
    kafka_heap_mb: int = Field(512, ge=128)
    elasticsearch_version: str = "9.3.2"
    elasticsearch_transport_port: int = Field(9400, ge=1, le=65535, description="node-to-node")
    elasticsearch_heap_mb: int = Field(512, ge=256)
    versitygw_version: str = Field(
        "v1.8.0", description="Versity S3 gateway (the `objects` service), built with Go"
    )
    java_home: Path | None = None
    es_java_home: Path | None = None
    start_timeout_s: float = Field(180.0, gt=0)

    @property
    def downloads(self) -> Path:
        return self.cache_dir or self.state_dir / "cache"
