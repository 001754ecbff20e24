"""Settings for every harclip component: read once from the environment (prefix `HARCLIP_`,
nested with `__`, e.g. `HARCLIP_KAFKA__BOOTSTRAP`) or a `.env` file, validated, frozen.

This is the only module that reads `os.environ`. Services build one `Settings` at start-up and
pass each part the section it needs.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cached_property
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError

from harclip import DECODER_MAX_PIXELS
from harclip.appsettings import StreamSettings, UiSettings
from harclip.errors import ConfigError

EngineName = Literal["onnx", "onnx-int8", "torchscript", "torch", "tensorrt"]
# What a user asks for: one engine, or "auto" (harclip.engines.auto picks one and says why).
EngineChoice = Literal["auto", "onnx", "onnx-int8", "torchscript", "torch", "tensorrt"]


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")  # the same as harclip.appsettings


class Topics(_Section):
    frames: str = "harclip.frames"
    uploads: str = "harclip.uploads"
    predictions: str = "harclip.predictions"
    events: str = "harclip.events"
    dlq: str = "harclip.frames.dlq"
    control: str = "harclip.control"

    def with_prefix(self, prefix: str) -> Topics:
        """The same topics with `prefix` in front of each name (tests use unique prefixes)."""
        return Topics(**{k: prefix + v for k, v in self.model_dump().items()})


class KafkaSettings(_Section):
    bootstrap: str = "127.0.0.1:9092"
    client_id: str = "harclip"
    group_id: str = "harclip-workers"
    topics: Topics = Topics()
    partitions: int = Field(6, ge=1, description="partitions for topics the project creates")
    add_partitions: bool = Field(
        False, description="grow a topic that has fewer partitions than configured (moves keys)"
    )
    replication_factor: int = Field(1, ge=1)
    frames_retention_ms: int = Field(3_600_000, ge=60_000, description="live frames, short")
    max_message_bytes: int = Field(4 * 1024 * 1024, ge=1024)
    request_timeout_ms: int = Field(30_000, ge=1000)
    producer_max_in_flight: int = Field(5, ge=1, le=5, description="idempotence allows at most 5")
    producer_linger_ms: int = Field(5, ge=0)

    @field_validator("bootstrap")
    @classmethod
    def _check_bootstrap(cls, v: str) -> str:
        for hostport in v.split(","):
            host, sep, port = hostport.strip().rpartition(":")
            if not sep or not host or not port.isdigit():
                raise ValueError(f"expected host:port[,host:port...], got {v!r}")
        return v

    @property
    def first_host(self) -> str:
        return self.bootstrap.split(",")[0].strip().rpartition(":")[0]

    @property
    def first_port(self) -> int:
        return int(self.bootstrap.split(",")[0].rpartition(":")[2])


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

    @model_validator(mode="after")
    def _check_index_names(self) -> ElasticsearchSettings:
        # Each family owns `<name>-*`; a name inside another's pattern would mix the families'
        # templates and let one family's retention judge the other's indices.
        names = {
            "PREDICTIONS_INDEX": self.predictions_index,
            "EVENTS_INDEX": self.events_index,
            "LOGS_INDEX": self.logs_index,
        }
        for a, x in names.items():
            for b, y in names.items():
                if a != b and (x == y or y.startswith(f"{x}-")):
                    raise ValueError(
                        f"index names overlap: {b}={y!r} lies inside {a}={x!r}'s indices "
                        f"({x}-*); give each family a name that is not a prefix of another's"
                    )
        return self


class ModelSettings(_Section):
    bundle: Path | None = Field(None, description="model bundle folder (harclip export --output)")
    engine: EngineChoice = Field(
        "auto", description="auto: the fastest engine the bundle validated for this machine"
    )
    hf_model: str = Field("openai/clip-vit-base-patch32", description="hub id or local folder")
    providers: tuple[str, ...] = Field(
        ("CPUExecutionProvider",),
        description="ONNX Runtime execution providers in order of preference",
    )
    torch_dtype: Literal["fp32", "fp16", "bf16"] = "fp32"
    tensorrt_precision: Literal["fp32", "fp16", "int8"] = Field(
        "fp16", description="which encoder.<precision>.plan the tensorrt engine runs"
    )
    device: str = Field(
        "auto", description="torch device: auto (cuda when a CUDA device is visible), cpu, cuda[:N]"
    )
    gpu_decode: bool = Field(True, description="decode JPEGs on the GPU when the engine runs there")
    intra_op_threads: int = Field(0, ge=0, description="0: ONNX Runtime's default")
    top_k: int = Field(5, ge=1)
    max_pixels: int = Field(
        40_000_000,
        ge=1,
        le=DECODER_MAX_PIXELS,
        description="decompression-bomb limit, pixels (the decoders' ceiling is 67,108,864)",
    )


class BatchingSettings(_Section):
    max_batch: int = Field(16, ge=1, le=1024)
    max_wait_ms: float = Field(10.0, ge=0)
    max_age_ms: float = Field(2000.0, gt=0, description="live frames older than this are dropped")
    decode_threads: int = Field(2, ge=1)
    max_inflight_batches: int = Field(2, ge=1)
    pipelined: bool = Field(
        True, description="false: one batch at a time, fetch only after the last commit (baseline)"
    )


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
    url_allow_loopback: bool = Field(
        False, description="tests only: let image URLs reach 127.0.0.1/::1 (private stays refused)"
    )
    follow_control: bool = Field(True, description="apply heads published on harclip.control")
    control_catch_up_s: float = Field(
        10.0, gt=0, description="at start: longest wait to read harclip.control before serving, s"
    )


Role = Literal["read", "predict", "admin"]


class KeyGrant(_Section):
    """What one API key may do: its role, and the stream ids it may ingest into."""

    role: Role
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
    keys: dict[str, Role | KeyGrant] = {}
    rate_per_s: float = Field(50.0, gt=0, description="per-key request rate")
    burst: int = Field(100, ge=1)

    def grants(self) -> dict[str, KeyGrant]:
        """Every key with its grant (a bare role grants every stream)."""
        return {k: v if isinstance(v, KeyGrant) else KeyGrant(role=v) for k, v in self.keys.items()}


class MetricsSettings(_Section):
    enabled: bool = Field(True, description="serve the worker's /health /ready /metrics")
    port: int = Field(9300, ge=0, le=65535, description="worker /health /ready /metrics; 0: any")
    host: str = "127.0.0.1"


class ServicesSettings(_Section):
    """The local Kafka / Redis / Elasticsearch that `harclip services up` runs (tests, demo)."""

    state_dir: Path = Path("state")
    cache_dir: Path | None = Field(None, description="downloads; default: <state_dir>/cache")
    kafka_version: str = "4.1.1"
    kafka_controller_port: int = Field(9093, ge=1, le=65535)
    kafka_heap_mb: int = Field(512, ge=128)
    elasticsearch_version: str = "9.3.2"
    elasticsearch_transport_port: int = Field(9400, ge=1, le=65535, description="node-to-node")
    elasticsearch_heap_mb: int = Field(512, ge=256)
    java_home: Path | None = None
    es_java_home: Path | None = None
    start_timeout_s: float = Field(180.0, gt=0)

    @property
    def downloads(self) -> Path:
        return self.cache_dir or self.state_dir / "cache"


class Settings(BaseSettings):
    """All of harclip's settings; each service uses the sections it needs."""

    model_config = SettingsConfigDict(
        env_prefix="HARCLIP_",
        env_nested_delimiter="__",
        env_file=".env",
        extra="ignore",
        frozen=True,
    )

    kafka: KafkaSettings = KafkaSettings()
    redis: RedisSettings = RedisSettings()
    elasticsearch: ElasticsearchSettings = ElasticsearchSettings()
    model: ModelSettings = ModelSettings()
    batching: BatchingSettings = BatchingSettings()
    api: ApiSettings = ApiSettings()
    auth: AuthSettings = AuthSettings()
    metrics: MetricsSettings = MetricsSettings()
    stream: StreamSettings = StreamSettings()
    ui: UiSettings = UiSettings()
    services: ServicesSettings = ServicesSettings()
    sample_data: Path | None = Field(None, description="HARCLIP_SAMPLE_DATA: shared/data folder")
    log_format: Literal["ecs", "text"] = "text"
    log_level: str = "INFO"
    log_to_elasticsearch: bool = Field(
        False, description="also bulk-write ECS log lines to the harclip-logs daily indices"
    )

    @model_validator(mode="after")
    def _check_auth(self) -> Settings:
        if self.auth.enabled and not self.auth.keys:
            raise ValueError("auth.enabled is true but auth.keys is empty: set HARCLIP_AUTH__KEYS")
        return self

    @property
    def log_shipping(self) -> ElasticsearchSettings | None:
        """Where `setup_logging` ships log lines: Elasticsearch when asked for, else nowhere."""
        return self.elasticsearch if self.log_to_elasticsearch else None

    def to_env(self) -> dict[str, str]:
        """The `HARCLIP_*` variables that make a child process read exactly these settings:
        one per leaf field (`HARCLIP_KAFKA__TOPICS__FRAMES`), lists and maps as JSON, secrets
        revealed, fields that are None left out (their default is None). Give a child these
        in place of the inherited `HARCLIP_*` ones (`child_environ`)."""
        out: dict[str, str] = {}
        for name in type(self).model_fields:
            _flatten(f"HARCLIP_{name.upper()}", getattr(self, name), out)
        return out

    @cached_property
    def sample_photos(self) -> Path | None:
        """The labelled HAR photos under `sample_data`, if present."""
        if self.sample_data is None:
            return None
        p = self.sample_data / "har-sample"
        return p if p.is_dir() else None


def _flatten(var: str, value: Any, out: dict[str, str]) -> None:
    if value is None:
        return
    if isinstance(value, BaseModel):
        for name in type(value).model_fields:
            _flatten(f"{var}__{name.upper()}", getattr(value, name), out)
    elif isinstance(value, SecretStr):
        out[var] = value.get_secret_value()
    elif isinstance(value, str | Path):
        out[var] = str(value)
    elif isinstance(value, bool | int | float):
        out[var] = json.dumps(value)
    else:  # tuples, lists, maps (of sections too): JSON, as pydantic-settings reads them
        out[var] = json.dumps(_plain(value))


def _plain(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return {k: _plain(getattr(value, k)) for k in type(value).model_fields}
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def child_environ(settings: Settings, base: Mapping[str, str]) -> dict[str, str]:
    """`base` (usually the parent's environment) without its `HARCLIP_*` variables, plus
    `settings.to_env()`: what a child process (worker, API, events app) runs with."""
    keep = {k: v for k, v in base.items() if not k.startswith("HARCLIP_")}
    return keep | settings.to_env()


def load_settings(**overrides: object) -> Settings:
    """Read settings from the environment once; a bad value raises `ConfigError` naming it."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as e:
        lines = []
        for err in e.errors():
            loc = "__".join(str(x) for x in err["loc"]).upper()
            lines.append(f"HARCLIP_{loc}: {err['msg']}" if loc else err["msg"])
        raise ConfigError("invalid settings:\n  " + "\n  ".join(lines)) from None
    except SettingsError as e:  # a list or map value that is not JSON
        raise ConfigError(
            f"invalid settings: {e}: list and map values are JSON, "
            """e.g. HARCLIP_MODEL__PROVIDERS='["CPUExecutionProvider"]'"""
        ) from None
