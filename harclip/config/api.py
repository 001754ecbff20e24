"""The API's sections: serving (`HARCLIP_API__*`) and API keys (`HARCLIP_AUTH__*`)."""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator

from harclip.config.base import _Section


class ApiSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    cors_origins: tuple[str, ...] = Field(
        (),
        description="origins of web pages that may call the API (CORS, and the Origin check of "
        "every request and WebSocket handshake; the API's own pages always may); '*': any",
    )
    allowed_hosts: tuple[str, ...] = Field(
        ("127.0.0.1", "localhost", "::1"),
        description="Host header values served (against DNS rebinding), besides `host` when it "
        "names one address: names, addresses, '*.example.com'; '*': any",
    )
    max_concurrent_predicts: int = Field(
        64, ge=1, description="predict requests served at once; more answer 503 + Retry-After"
    )
    max_queued_images: int = Field(
        512, ge=1, description="images waiting for an engine batch; more answer 503 + Retry-After"
    )
    max_body_bytes: int = Field(10 * 1024 * 1024, ge=1024)
    max_upload_files: int = Field(32, ge=1)
    url_fetch_timeout_s: float = Field(5.0, gt=0)
    url_max_redirects: int = Field(3, ge=0)
    ws_queue_size: int = Field(256, ge=1, description="per-client buffer before oldest is dropped")
    ws_heartbeat_s: float = Field(15.0, gt=0)
    ws_compression: bool = Field(
        False,
        description="permessage-deflate on WebSockets: compresses each message once per client "
        "(fan-out CPU grows with subscribers); off unless bandwidth is what is short",
    )
    batch_wait_ms: float = Field(
        0.0,
        ge=0,
        description="REST micro-batching: extra wait for more requests once the engine is free; "
        "0 = greedy (a batch starts when the engine is free; requests queued meanwhile join it)",
    )
    inline_decode_pixels: int = Field(
        400_000,
        ge=0,
        description="a request's lone image of at most 256 KiB and this many pixels is decoded "
        "on the event loop (under ~1 ms), not handed to the decode pool; 0 = always the pool",
    )
    url_allow_loopback: bool = Field(
        False, description="tests only: let image URLs reach 127.0.0.1/::1 (private stays refused)"
    )
    public_url: str = Field(
        "http://127.0.0.1:8000",
        description="the API's address as people and other systems reach it (behind a proxy: "
        "the proxy's): webhooks and Kibana link each event's snapshot and clip under it",
    )
    ready_requires: tuple[Literal["redis", "elasticsearch"], ...] = Field(
        ("redis", "elasticsearch"),
        description="dependencies whose failure makes /ready answer 503 (each is still checked "
        "and reported); on Kubernetes only the model: predictions need neither, and a restarting "
        "single Redis would otherwise take every API replica out of its Service",
    )
    follow_control: bool = Field(True, description="apply heads published on harclip.control")
    control_catch_up_s: float = Field(
        10.0, gt=0, description="at start: longest wait to read harclip.control before serving, s"
    )

    @field_validator("public_url")
    @classmethod
    def _check_public_url(cls, v: str) -> str:
        parts = urlsplit(v)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"expected http(s)://host[:port][/path], got {v!r}")
        return v.rstrip("/")


Role = Literal["read", "predict", "admin"]


class KeyGrant(_Section):
    """What one API key may do: its role, and the stream ids it may ingest into."""

    role: Role
    name: str | None = Field(
        None, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._@:-]+$",
        description="who holds the key, recorded as `by` of their feedback (default: the key's "
        "first characters)",
    )  # fmt: skip
    streams: tuple[str, ...] | None = Field(
        None,
        description="stream-id patterns this key may ingest into (fnmatch, case-sensitive: "
        "'lobby-*', 'cam-?'); None: any stream",
    )

    @field_validator("streams")
    @classmethod
    def _check_streams(cls, v: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if v is not None and not all(p.strip() for p in v):
            raise ValueError("stream patterns must not be empty")
        return v


class AuthSettings(_Section):
    enabled: bool = Field(
        False,
        description="false: reads and predict need no key; writes (PUT /labels, ingest) still "
        "need an admin key from `keys`",
    )
    # per key: a role ("read" | "predict" | "admin") or {"role": ..., "streams": ["lobby-*"]}
    keys: dict[str, Role | KeyGrant] = Field(default_factory=dict)
    rate_per_s: float = Field(50.0, gt=0, description="per-key request rate")
    burst: int = Field(100, ge=1)
    feedback_per_min: float = Field(30.0, gt=0, description="per-key rate of POST /feedback")
    feedback_burst: int = Field(20, ge=1)

    def grants(self) -> dict[str, KeyGrant]:
        """Every key with its grant (a bare role grants every stream)."""
        return {k: v if isinstance(v, KeyGrant) else KeyGrant(role=v) for k, v in self.keys.items()}
