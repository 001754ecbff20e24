"""The chaos tests' private Kafka, Elasticsearch and Redis (their own ports and state folder, so
killing them hurts no other test), the rig's constants, and its table of faults."""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass

from harclip.config import Settings
from harclip.services import manager
from harclip.services.base import Service
from tests.support.processes import ROOT

STATE = ROOT / "state" / "chaos"
# Ports of the private services: none of the defaults (9092, 9200, 6379) nor a worktree's .env
KAFKA_PORT, CONTROLLER_PORT = 21192, 21193
ES_PORT, ES_TRANSPORT_PORT = 21200, 21400
REDIS_PORT = 21379
PARTITIONS = 4
RATE_PER_STREAM = 5.0  # frames/s; 2 producers x 2 streams: 20 frames/s in all
POISON_EVERY = 40  # every 40th upload is a poison record (not an image)
START_TIMEOUT_S = 180.0
SETTLE_TIMEOUT_S = 300.0


@dataclass
class Row:
    """One fault's line in the table (times in seconds)."""

    fault: str
    outage_s: float = 0.0  # fault injected -> the service / process is back
    recovery_s: float = 0.0  # fault injected -> every record produced until it was back committed
    sent: int = 0
    lost: int = 0  # frames sent without an Elasticsearch document
    duplicated: int = 0  # frames with more than one document
    latest_wrong: int = 0  # streams whose Redis `latest` is not their last frame
    gaps: int = 0  # frames a subscriber of their stream never got
    dlq_not_poison: int = 0  # DLQ records that were not poison
    poison_missing: int = 0  # poison records not in the DLQ
    note: str = ""


ROWS: list[Row] = []


@dataclass
class Services:
    settings: Settings
    by_name: dict[str, Service]

    def up(self, name: str) -> None:
        manager.up([self.by_name[name]])

    def down(self, name: str) -> None:
        """SIGTERM, wait for the exit (SIGKILL after the service's grace time)."""
        manager.down([self.by_name[name]])

    def kill(self, name: str) -> None:
        """SIGKILL, wait for the exit."""
        pid = self.by_name[name].status().pid
        assert pid is not None, f"{name} is not running"
        os.kill(pid, signal.SIGKILL)
        manager.down([self.by_name[name]])  # reaps it, removes the pid file


def private_settings(base: Settings) -> Settings:
    return base.model_copy(update={
        "kafka": base.kafka.model_copy(update={"bootstrap": f"127.0.0.1:{KAFKA_PORT}"}),
        "elasticsearch": base.elasticsearch.model_copy(
            update={"url": f"http://127.0.0.1:{ES_PORT}"}),
        "redis": base.redis.model_copy(update={"url": f"redis://127.0.0.1:{REDIS_PORT}/0"}),
        "services": base.services.model_copy(update={
            "state_dir": STATE, "kafka_controller_port": CONTROLLER_PORT,
            "elasticsearch_transport_port": ES_TRANSPORT_PORT,
            "cache_dir": base.services.downloads.resolve()}),
    })  # fmt: skip
