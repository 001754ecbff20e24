"""Settings: env parsing with `__` nesting, errors that name the variable, frozen sections."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from harclip.config import KafkaSettings, Settings, Topics, load_settings
from harclip.errors import ConfigError


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No HARCLIP_ variable from the caller's shell, no `.env` from the repository."""
    import os

    for name in list(os.environ):
        if name.startswith("HARCLIP_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def test_defaults_match_design() -> None:
    s = load_settings()
    assert s.kafka.bootstrap == "127.0.0.1:9092"
    assert s.kafka.topics.frames == "harclip.frames"
    assert s.kafka.topics.control == "harclip.control"
    assert s.kafka.group_id == "harclip-workers"
    assert s.redis.key_prefix == "harclip"
    assert s.elasticsearch.predictions_index == "harclip-predictions"
    assert s.model.engine == "auto"


def test_nested_sections_come_from_double_underscore_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARCLIP_KAFKA__BOOTSTRAP", "k1:9000,k2:9001")
    monkeypatch.setenv("HARCLIP_KAFKA__TOPICS__FRAMES", "cams")
    monkeypatch.setenv("HARCLIP_REDIS__FRAME_TTL_S", "5")
    monkeypatch.setenv(
        "HARCLIP_MODEL__PROVIDERS", '["CUDAExecutionProvider", "CPUExecutionProvider"]'
    )
    monkeypatch.setenv("HARCLIP_AUTH__ENABLED", "true")
    monkeypatch.setenv("HARCLIP_AUTH__KEYS", '{"k-1": "read"}')
    monkeypatch.setenv("HARCLIP_SOMETHING_ELSE", "ignored")
    s = load_settings()
    assert s.kafka.bootstrap == "k1:9000,k2:9001"
    assert s.kafka.first_port == 9000
    assert s.kafka.topics.frames == "cams"
    assert s.kafka.topics.uploads == "harclip.uploads"  # siblings keep their defaults
    assert s.redis.frame_ttl_s == 5
    assert s.model.providers == ("CUDAExecutionProvider", "CPUExecutionProvider")
    assert s.auth.keys == {"k-1": "read"}


def test_dotenv_file_is_read(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("HARCLIP_REDIS__URL=redis://cache:6380/2\n")
    s = load_settings()
    assert s.redis.url == "redis://cache:6380/2"
    assert s.redis.port == 6380


def test_overrides_win_over_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARCLIP_LOG_LEVEL", "DEBUG")
    assert load_settings(log_level="WARNING").log_level == "WARNING"


@pytest.mark.parametrize(
    ("var", "value", "says"),
    [
        ("HARCLIP_KAFKA__BOOTSTRAP", "no-port", "expected host:port"),
        ("HARCLIP_KAFKA__PRODUCER_MAX_IN_FLIGHT", "6", "less than or equal to 5"),
        ("HARCLIP_KAFKA__BOGUS", "1", "Extra inputs are not permitted"),
        ("HARCLIP_REDIS__URL", "http://x", "expected redis://"),
        ("HARCLIP_REDIS__RECENT_MAXLEN", "3", "greater than or equal to 10"),
        ("HARCLIP_ELASTICSEARCH__URL", "es:9200", "expected http(s)://"),
        ("HARCLIP_MODEL__ENGINE", "tflite", "'onnx'"),
        ("HARCLIP_BATCHING__MAX_BATCH", "abc", "valid integer"),
        ("HARCLIP_API__PORT", "70000", "less than or equal to 65535"),
        ("HARCLIP_LOG_FORMAT", "xml", "'ecs'"),
    ],
)
def test_a_bad_value_names_its_variable(
    monkeypatch: pytest.MonkeyPatch, var: str, value: str, says: str
) -> None:
    monkeypatch.setenv(var, value)
    with pytest.raises(ConfigError) as e:
        load_settings()
    assert f"{var}: " in str(e.value)
    assert says in str(e.value)


def test_every_bad_value_is_reported_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARCLIP_API__PORT", "0")
    monkeypatch.setenv("HARCLIP_REDIS__FRAME_TTL_S", "0")
    with pytest.raises(ConfigError, match=r"(?s)HARCLIP_REDIS__FRAME_TTL_S.*HARCLIP_API__PORT"):
        load_settings()


def test_auth_without_keys_says_what_to_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARCLIP_AUTH__ENABLED", "1")
    with pytest.raises(ConfigError, match="set HARCLIP_AUTH__KEYS"):
        load_settings()


def test_a_list_that_is_not_json_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARCLIP_MODEL__PROVIDERS", "CPUExecutionProvider")
    with pytest.raises(ConfigError, match=r"field \"model\".*JSON"):
        load_settings()


def test_settings_and_sections_are_frozen() -> None:
    s = load_settings()
    with pytest.raises(ValidationError):
        s.log_level = "DEBUG"  # type: ignore[misc]
    with pytest.raises(ValidationError):
        s.kafka.bootstrap = "x:1"  # type: ignore[misc]
    with pytest.raises(ValidationError):
        s.kafka.topics.frames = "x"  # type: ignore[misc]


def test_topic_prefix_applies_to_every_topic() -> None:
    t = Topics().with_prefix("t1.")
    assert set(t.model_dump().values()) == {f"t1.{v}" for v in Topics().model_dump().values()}


def test_sections_validate_on_their_own() -> None:
    with pytest.raises(ValidationError):
        KafkaSettings(partitions=0)
    assert isinstance(Settings().kafka, KafkaSettings)


def test_api_keys_as_roles_or_grants_with_stream_scopes(monkeypatch: pytest.MonkeyPatch) -> None:
    from harclip.config import KeyGrant

    monkeypatch.setenv(
        "HARCLIP_AUTH__KEYS", '{"k-1": "admin", "k-2": {"role": "predict", "streams": ["lobby-*"]}}'
    )
    grants = load_settings().auth.grants()
    assert grants == {
        "k-1": KeyGrant(role="admin"),
        "k-2": KeyGrant(role="predict", streams=("lobby-*",)),
    }
    monkeypatch.setenv("HARCLIP_AUTH__KEYS", '{"k-2": {"role": "predict", "stream": ["x"]}}')
    with pytest.raises(ConfigError, match="HARCLIP_AUTH__KEYS"):
        load_settings()


def test_to_env_gives_a_child_exactly_these_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    from harclip.config import child_environ

    s = load_settings(
        kafka={"topics": Topics().with_prefix("t-1."), "partitions": 3},
        auth={"enabled": True,
              "keys": {"k-1": "read", "k-2": {"role": "admin", "streams": ["a-*"]}}},
        ui={"api_key": "s3cret"},
        model={"providers": ["A", "B"]},
        objects={"url": "https://s3.example:8443", "bucket": "ev-1", "secret_key": "obj-secret",
                 "addressing": "virtual", "request_timeout_s": 2.5},
        services={"versitygw_version": "v9.9.9"},
        sample_data="/data/x",
        log_level="DEBUG",
    )  # fmt: skip
    env = s.to_env()
    assert env["HARCLIP_KAFKA__TOPICS__FRAMES"] == "t-1.harclip.frames"
    assert env["HARCLIP_UI__API_KEY"] == "s3cret"
    assert env["HARCLIP_OBJECTS__SECRET_KEY"] == "obj-secret"
    assert env["HARCLIP_OBJECTS__ADDRESSING"] == "virtual"
    monkeypatch.setenv("HARCLIP_KAFKA__PARTITIONS", "9")  # inherited: replaced, not merged
    monkeypatch.setenv("HARCLIP_REDIS__URL", "redis://elsewhere:1/0")
    child = child_environ(s, dict(os.environ))
    for name in list(os.environ):
        if name.startswith("HARCLIP_"):
            monkeypatch.delenv(name)
    for name, value in child.items():
        if name.startswith("HARCLIP_"):
            monkeypatch.setenv(name, value)
    again = load_settings()
    assert again.model_dump() == s.model_dump()
    assert again.ui.api_key is not None and again.ui.api_key.get_secret_value() == "s3cret"
    assert again.objects.secret_key.get_secret_value() == "obj-secret"
    assert again.objects.url == "https://s3.example:8443"


def test_object_store_defaults_are_the_local_server() -> None:
    s = load_settings().objects
    assert (s.url, s.bucket, s.access_key, s.region, s.addressing) == (
        "http://127.0.0.1:9000", "harclip", "harclip", "us-east-1", "path",
    )  # fmt: skip
    assert s.secret_key.get_secret_value() == "harclip-local-secret"
    assert (s.host, s.port) == ("127.0.0.1", 9000)
    assert "harclip-local-secret" not in repr(s)


@pytest.mark.parametrize(
    ("env", "value"),
    [
        ("HARCLIP_OBJECTS__URL", "s3://bucket"),
        ("HARCLIP_OBJECTS__URL", "http://127.0.0.1:9000/harclip"),
        ("HARCLIP_OBJECTS__BUCKET", "Has_Upper"),
        ("HARCLIP_OBJECTS__ADDRESSING", "dns"),
        ("HARCLIP_OBJECTS__REQUEST_TIMEOUT_S", "0"),
    ],
)
def test_a_bad_object_store_setting_is_named(
    monkeypatch: pytest.MonkeyPatch, env: str, value: str
) -> None:
    monkeypatch.setenv(env, value)
    with pytest.raises(ConfigError, match=env):
        load_settings()
