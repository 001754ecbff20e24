"""The stores' sections: Redis (`HARCLIP_REDIS__*`, the live store) and Elasticsearch
(`HARCLIP_ELASTICSEARCH__*`, history, events, logs)."""

from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import Field, field_validator

from harclip.config.base import _Section


class RedisSettings(_Section):
    enabled: bool = True
    url: str = "redis://127.0.0.1:6379/0"
    key_prefix: str = "harclip"
    recent_maxlen: int = Field(1000, ge=10, description="cap of each stream's recent Redis Stream")
    frame_ttl_s: int = Field(60, ge=1, description="TTL of the latest-frame key, seconds")
    max_connections: int = Field(
        64, ge=2, description="connections one process may open; more callers wait for one"
    )
    pool_timeout_s: float = Field(
        10.0, gt=0, description="longest wait for a free connection before Redis is unavailable"
    )

    @field_validator("url")
    @classmethod
    def _check_url(cls, v: str) -> str:
        if urlsplit(v).scheme not in ("redis", "rediss", "unix"):
            raise ValueError(f"expected redis://host:port/db, got {v!r}")
        return v

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or "127.0.0.1"

    @property
    def port(self) -> int:
        return urlsplit(self.url).port or 6379


class ElasticsearchSettings(_Section):
    enabled: bool = True
    url: str = "http://127.0.0.1:9200"
    predictions_index: str = Field(
        "harclip-predictions",
        description="read alias; indices are <alias>-<embedding space>-<yyyy.mm.dd>",
    )
    events_index: str = Field("harclip-events", description="read alias of <alias>-<yyyy.mm.dd>")
    logs_index: str = Field("harclip-logs", description="read alias of <alias>-<yyyy.mm.dd>")
    predictions_retention_days: int = Field(30, ge=1, description="days kept, today included")
    events_retention_days: int = Field(365, ge=1)
    logs_retention_days: int = Field(14, ge=1)
    keyframes: bool = Field(True, description="store embeddings of keyframes only")
    keyframe_distance: float = Field(
        0.015,
        ge=0.0,
        le=2.0,
        description="a frame this far (1 - cosine) from the last keyframe is one",
    )
    keyframe_every_s: float = Field(
        10.0, gt=0, description="at least one keyframe per stream this often (capture time), s"
    )
    shards: int = Field(1, ge=1)
    replicas: int = Field(0, ge=0)
    request_timeout_s: float = Field(30.0, gt=0)
    username: str | None = None
    password: str | None = None

    @field_validator("url")
    @classmethod
    def _check_url(cls, v: str) -> str:
        if urlsplit(v).scheme not in ("http", "https"):
            raise ValueError(f"expected http(s)://host:port, got {v!r}")
        return v

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or "127.0.0.1"

    @property
    def port(self) -> int:
        return urlsplit(self.url).port or 9200
