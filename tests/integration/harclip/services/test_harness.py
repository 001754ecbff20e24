"""The integration harness itself: services answer, names are unique, ports are guarded."""

from __future__ import annotations

from pathlib import Path

import pytest

from harclip.config import ServicesSettings, Settings
from harclip.errors import ServiceError
from harclip.services import manager
from harclip.services.kafka import KafkaService
from harclip.services.objects import ObjectStoreService
from harclip.services.redis import RedisService
from tests.support.scoped import Unique


def test_every_service_answers(settings: Settings) -> None:
    assert manager.not_answering(settings) == []


def test_unique_names_every_resource_apart(settings: Settings, unique: Unique) -> None:
    scoped = unique.settings
    topics = scoped.kafka.topics.model_dump().values()
    assert all(t.startswith(f"test-{unique.suffix}.harclip.") for t in topics)
    assert scoped.kafka.group_id.endswith(unique.suffix)
    assert scoped.elasticsearch.predictions_index == f"harclip-predictions-{unique.suffix}"
    assert scoped.elasticsearch.events_index == f"harclip-events-{unique.suffix}"
    assert scoped.redis.key_prefix == f"harclip-{unique.suffix}"
    assert unique.name("idx") == f"idx-{unique.suffix}"
    # addresses are untouched
    assert scoped.kafka.bootstrap == settings.kafka.bootstrap
    assert scoped.redis.url == settings.redis.url


@pytest.mark.parametrize("service", ["kafka", "redis", "objects"])
def test_a_second_up_on_the_same_ports_names_the_port(
    settings: Settings, tmp_path: Path, service: str
) -> None:
    """Another state folder (so not `up`'s own pid files) with the running servers' ports."""
    other = ServicesSettings(state_dir=tmp_path)
    svc: KafkaService | RedisService | ObjectStoreService
    if service == "kafka":
        svc = KafkaService(settings.kafka, other)
        port = settings.kafka.first_port
    elif service == "objects":
        svc = ObjectStoreService(settings.objects, other)
        port = settings.objects.port
    else:
        svc = RedisService(settings.redis, other)
        port = settings.redis.port
    with pytest.raises(ServiceError, match=rf"{service}: port {port} on 127.0.0.1 is already in"):
        svc.up()
