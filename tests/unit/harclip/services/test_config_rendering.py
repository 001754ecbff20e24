"""What `harclip services up` writes for each server, and the checks before it starts one."""

from __future__ import annotations

import base64
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from harclip.config import (
    ElasticsearchSettings,
    KafkaSettings,
    RedisSettings,
    ServicesSettings,
    load_settings,
)
from harclip.errors import ServiceError
from harclip.services import elasticsearch, kafka, manager, redis
from harclip.services.base import State
from harclip.services.java import find_java


def _props(text: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#"))
    return dict(pairs)


@pytest.fixture
def held_port() -> Iterator[int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


def test_kafka_properties_single_node_kraft(tmp_path: Path) -> None:
    ks = KafkaSettings(bootstrap="127.0.0.1:19092")
    props = _props(kafka.render_server_properties(ks, ServicesSettings(), tmp_path / "data"))
    assert props["process.roles"] == "broker,controller"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:9093"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:19092"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:9093"
    assert props["log.dirs"] == str(tmp_path / "data")
    for key in (
        "offsets.topic.replication.factor",
        "transaction.state.log.replication.factor",
        "transaction.state.log.min.isr",
        "share.coordinator.state.topic.replication.factor",
        "offsets.topic.num.partitions",
    ):
        assert props[key] == "1", key
    assert props["group.initial.rebalance.delay.ms"] == "0"
    assert props["message.max.bytes"] == str(ks.max_message_bytes)


def test_kafka_cluster_id_is_a_kafka_uuid() -> None:
    cid = kafka.cluster_id()
    assert len(cid) == 22
    assert len(base64.urlsafe_b64decode(cid + "==")) == 16
    assert cid != kafka.cluster_id()


def test_elasticsearch_config_single_node_no_security(tmp_path: Path) -> None:
    es = ElasticsearchSettings(url="http://127.0.0.1:19200")
    text = elasticsearch.render_config(es, ServicesSettings(), tmp_path)
    conf = dict(line.split(": ", 1) for line in text.splitlines() if not line.startswith("#"))
    assert conf["http.port"] == "19200"
    assert conf["transport.port"] == "9400"
    assert conf["network.host"] == "127.0.0.1"
    assert conf["discovery.type"] == "single-node"
    assert conf["xpack.security.enabled"] == "false"
    assert conf["cluster.routing.allocation.disk.threshold_enabled"] == "false"
    assert conf["path.data"] == str(tmp_path / "data")


def test_redis_config_loopback_without_persistence(tmp_path: Path) -> None:
    text = redis.render_config(RedisSettings(url="redis://127.0.0.1:16379/0"), tmp_path)
    conf = dict(line.split(" ", 1) for line in text.splitlines() if not line.startswith("#"))
    assert conf["bind"] == "127.0.0.1"
    assert conf["port"] == "16379"
    assert conf["save"] == '""'
    assert conf["appendonly"] == "no"
    assert conf["pidfile"] == str(tmp_path / "redis.pid")


def test_kafka_up_names_a_taken_port(tmp_path: Path, held_port: int) -> None:
    svc = kafka.KafkaService(
        KafkaSettings(bootstrap=f"127.0.0.1:{held_port}"), ServicesSettings(state_dir=tmp_path)
    )
    with pytest.raises(ServiceError, match=rf"port {held_port} on 127.0.0.1 is already in use"):
        svc.up()


def test_kafka_up_names_a_taken_controller_port(tmp_path: Path, held_port: int) -> None:
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        broker_port = free.getsockname()[1]
    services = ServicesSettings(state_dir=tmp_path, kafka_controller_port=held_port)
    svc = kafka.KafkaService(KafkaSettings(bootstrap=f"127.0.0.1:{broker_port}"), services)
    with pytest.raises(ServiceError, match=rf"port {held_port} on 127.0.0.1 is already in use"):
        svc.up()


def test_redis_up_names_a_taken_port(tmp_path: Path, held_port: int) -> None:
    svc = redis.RedisService(
        RedisSettings(url=f"redis://127.0.0.1:{held_port}/0"), ServicesSettings(state_dir=tmp_path)
    )
    with pytest.raises(ServiceError, match=rf"redis: port {held_port} on 127.0.0.1"):
        svc.up()


def test_status_of_a_fresh_state_dir_is_stopped(tmp_path: Path) -> None:
    settings = load_settings(services=ServicesSettings(state_dir=tmp_path))
    statuses = manager.status(manager.build(settings))
    assert [s.name for s in statuses] == ["kafka", "elasticsearch", "redis", "objects"]
    assert {s.state for s in statuses} == {State.STOPPED}


def test_build_rejects_unknown_service_names() -> None:
    with pytest.raises(ServiceError, match=r"unknown service\(s\) zookeeper; known: kafka"):
        manager.build(load_settings(), ["zookeeper"])
    assert [s.name for s in manager.build(load_settings(), ["redis", "kafka"])] == [
        "kafka",
        "redis",
    ]


def test_find_java_rejects_a_home_without_java(tmp_path: Path) -> None:
    with pytest.raises(ServiceError, match=r"Elasticsearch 9 needs Java 21\+, but .* no runnable"):
        find_java(tmp_path, 21, "Elasticsearch 9")
