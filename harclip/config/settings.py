"""`Settings`, all of harclip's sections: read once from the environment (prefix `HARCLIP_`,
nested with `__`, e.g. `HARCLIP_KAFKA__BOOTSTRAP`) or a `.env` file, validated, frozen; and the
way back, `Settings.to_env()`, for child processes.

This is the only module that reads `os.environ`. Services build one `Settings` at start-up and
pass each part the section it needs.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    Field,
    SecretStr,
    ValidationError,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError

from harclip.config.adapt import AdaptSettings
from harclip.config.api import ApiSettings, AuthSettings
from harclip.config.apps import StreamSettings, UiSettings
from harclip.config.kafka import KafkaSettings
from harclip.config.model import BatchingSettings, ModelSettings
from harclip.config.services import MetricsSettings, ServicesSettings
from harclip.config.stores import ElasticsearchSettings, ObjectStoreSettings, RedisSettings
from harclip.errors import ConfigError


class Settings(BaseSettings):
    """All of harclip's settings; each service uses the sections it needs."""

    model_config = SettingsConfigDict(
        env_prefix="HARCLIP_",
        env_nested_delimiter="__",
        env_file=".env",
        extra="ignore",
        frozen=True,
        allow_inf_nan=False,
    )

    kafka: KafkaSettings = KafkaSettings()
    redis: RedisSettings = RedisSettings()
    elasticsearch: ElasticsearchSettings = ElasticsearchSettings()
    objects: ObjectStoreSettings = ObjectStoreSettings()
    model: ModelSettings = ModelSettings()
    batching: BatchingSettings = BatchingSettings()
    api: ApiSettings = ApiSettings()
    auth: AuthSettings = AuthSettings()
    metrics: MetricsSettings = MetricsSettings()
    stream: StreamSettings = StreamSettings()
    ui: UiSettings = UiSettings()
    services: ServicesSettings = ServicesSettings()
    adapt: AdaptSettings = AdaptSettings()
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
