"""The stores' sections: Redis (`HARCLIP_REDIS__*`, the live store), Elasticsearch
(`HARCLIP_ELASTICSEARCH__*`, history, events, logs) and the S3 object store (`HARCLIP_OBJECTS__*`,
evidence)."""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator

from harclip.config.base import _Section


class RedisSettings(_Section):
    enabled: bool = True
    url: str = "redis://127.0.0.1:6379/0"
    password: SecretStr = Field(
        SecretStr(""),
        description="AUTH password (a password in `url` wins); keeps it out of the URL",
    )
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
    feedback_index: str = Field(
        "harclip-feedback", description="operators' verdicts (harclip.feedback/1), one index, kept"
    )
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

    @model_validator(mode="after")
    def _check_index_names(self) -> ElasticsearchSettings:
        # Each family owns `<name>-*`; a name inside another's pattern would mix the families'
        # templates and let one family's retention judge the other's indices.
        names = {
            "PREDICTIONS_INDEX": self.predictions_index,
            "EVENTS_INDEX": self.events_index,
            "LOGS_INDEX": self.logs_index,
            "FEEDBACK_INDEX": self.feedback_index,
        }
        for a, x in names.items():
            for b, y in names.items():
                if a != b and (x == y or y.startswith(f"{x}-")):
                    raise ValueError(
                        f"index names overlap: {b}={y!r} lies inside {a}={x!r}'s indices "
                        f"({x}-*); give each family a name that is not a prefix of another's"
                    )
        return self


class ObjectStoreSettings(_Section):
    """The S3-compatible object store (`HARCLIP_OBJECTS__*`) that keeps evidence: snapshots,
    thumbnails and clips. Locally `harclip services up` runs one (Versity's S3 gateway) with the
    dev credentials below; in production point `url` at any S3 endpoint and set real keys."""

    enabled: bool = True
    url: str = Field("http://127.0.0.1:9000", description="S3 endpoint, http(s)://host:port")
    bucket: str = Field("harclip", min_length=3, max_length=63, pattern=r"^[a-z0-9][a-z0-9.-]+$")
    access_key: str = Field("harclip", min_length=1)
    secret_key: SecretStr = Field(
        SecretStr("harclip-local-secret"),
        description="dev default of the local server; set a real one anywhere else",
    )
    region: str = "us-east-1"
    addressing: Literal["path", "virtual"] = Field(
        "path", description="bucket in the path (most S3-compatible servers) or in the host name"
    )
    request_timeout_s: float = Field(10.0, gt=0, description="connect and read timeout, s")

    @field_validator("url")
    @classmethod
    def _check_url(cls, v: str) -> str:
        parts = urlsplit(v)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"expected http(s)://host:port, got {v!r}")
        if parts.path not in ("", "/"):
            raise ValueError(f"expected an endpoint without a path, got {v!r}")
        return v.rstrip("/")

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or "127.0.0.1"

    @property
    def port(self) -> int:
        parts = urlsplit(self.url)
        return parts.port or (443 if parts.scheme == "https" else 80)
