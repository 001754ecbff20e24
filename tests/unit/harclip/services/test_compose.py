"""infra/docker-compose.yml parses and publishes the same loopback ports as `services up`."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from harclip.config import (
    ElasticsearchSettings,
    KafkaSettings,
    ObjectStoreSettings,
    RedisSettings,
    ServicesSettings,
)

COMPOSE = Path(__file__).parents[4] / "infra" / "docker-compose.yml"


def _published(service: dict[str, object]) -> tuple[str, str, int]:
    """(host, env var, default port) of a service's one `127.0.0.1:${VAR:-PORT}:PORT` entry."""
    ports = service["ports"]
    assert isinstance(ports, list) and len(ports) == 1
    m = re.fullmatch(r"([\d.]+):\$\{(\w+):-(\d+)\}:\d+", ports[0])
    assert m, ports[0]
    return m.group(1), m.group(2), int(m.group(3))


def test_compose_ports_match_the_default_settings() -> None:
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    # and the deployables
    assert {"kafka", "elasticsearch", "redis", "objects", "kibana"} <= set(services)
    expected = {  # the code's defaults, whatever this environment overrides
        "kafka": ("HARCLIP_KAFKA_PORT", KafkaSettings().first_port),
        "elasticsearch": ("HARCLIP_ES_PORT", ElasticsearchSettings().port),
        "redis": ("HARCLIP_REDIS_PORT", RedisSettings().port),
        "objects": ("HARCLIP_OBJECTS_PORT", ObjectStoreSettings().port),
        "kibana": ("HARCLIP_KIBANA_PORT", 5601),
    }
    for name, (var, port) in expected.items():
        assert _published(services[name]) == ("127.0.0.1", var, port), name


def test_compose_images_match_the_local_versions() -> None:
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    s = ServicesSettings()
    assert services["kafka"]["image"] == f"apache/kafka:{s.kafka_version}"
    es_image = f"docker.elastic.co/elasticsearch/elasticsearch:{s.elasticsearch_version}"
    assert services["elasticsearch"]["image"] == es_image
    assert services["kibana"]["image"].endswith(f":{s.elasticsearch_version}")
    assert services["objects"]["image"] == f"versity/versitygw:{s.versitygw_version}"


def test_compose_object_store_keys_are_the_settings_defaults() -> None:
    """The gateway's root keys and what the deployables sign with are the same pair."""
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    o = ObjectStoreSettings()
    access = f"${{HARCLIP_OBJECTS_ACCESS_KEY:-{o.access_key}}}"
    secret = f"${{HARCLIP_OBJECTS_SECRET_KEY:-{o.secret_key.get_secret_value()}}}"
    gateway = services["objects"]["environment"]
    assert (gateway["ROOT_ACCESS_KEY"], gateway["ROOT_SECRET_KEY"]) == (access, secret)
    for name in ("worker", "api", "stream"):
        env = services[name]["environment"]
        assert env["HARCLIP_OBJECTS__URL"] == "http://objects:9000", name
        assert (env["HARCLIP_OBJECTS__ACCESS_KEY"], env["HARCLIP_OBJECTS__SECRET_KEY"]) == (
            access, secret,
        ), name  # fmt: skip
