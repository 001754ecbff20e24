"""A single-node Apache Kafka (KRaft, broker+controller) assembled from Maven Central jars."""

from __future__ import annotations

import asyncio
import base64
import logging
import shutil
import uuid
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path

from harclip.config import KafkaSettings, ServicesSettings
from harclip.errors import ServiceError
from harclip.services import process
from harclip.services.base import LocalServer, State, Status, render
from harclip.services.java import find_java

_MVN_HINT = "install Maven (apt-get install -y maven); it fetches Kafka's jars from Maven Central"


def render_server_properties(kafka: KafkaSettings, services: ServicesSettings, data: Path) -> str:
    """`server.properties` of a one-node KRaft cluster listening on the bootstrap address."""
    host, port = kafka.first_host, kafka.first_port
    ctl = services.kafka_controller_port
    props = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@{host}:{ctl}",
        "listeners": f"PLAINTEXT://{host}:{port},CONTROLLER://{host}:{ctl}",
        "advertised.listeners": f"PLAINTEXT://{host}:{port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "log.dirs": str(data),
        "num.partitions": "1",
        "default.replication.factor": "1",
        "min.insync.replicas": "1",
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
        "auto.create.topics.enable": "false",
        "message.max.bytes": str(kafka.max_message_bytes),
    }
    return render(props, "=")


def cluster_id() -> str:
    """A random KRaft cluster id: 16 bytes, URL-safe base64 without padding (Kafka's Uuid)."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()


class KafkaService(LocalServer):
    name = "kafka"

    def __init__(self, kafka: KafkaSettings, services: ServicesSettings) -> None:
        self._kafka = kafka
        self._services = services
        state = services.state_dir.resolve()
        self._dir = state / "kafka"
        self._lib = services.downloads.resolve() / f"kafka-{services.kafka_version}" / "lib"
        self._props = self._dir / "server.properties"
        self._pidfile = self._dir / "kafka.pid"
        self._log = self._dir / "server.log"
        self._marker = str(self._props)

    # -- Service ---------------------------------------------------------------------------

    def up(self) -> Status:
        return self._up(self._spawn)

    # -- steps -----------------------------------------------------------------------------

    def _spawn(self) -> int:
        ports = [self._kafka.first_port, self._services.kafka_controller_port]
        process.require_free(self.name, self._kafka.first_host, ports)
        java = find_java(self._services.java_home, 17, "Kafka")
        self._fetch()
        self._configure(java)
        return process.spawn(self._command(java), self._log, cwd=self._dir)

    def _fetch(self) -> None:
        """Download the broker's runtime jars once into the cache (`<cache>/kafka-<v>/lib`)."""
        if (self._lib / ".complete").is_file():
            return
        mvn = process.require_tool("mvn", _MVN_HINT)
        work = self._lib.parent.with_name(self._lib.parent.name + ".partial")
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        pom = resources.files("harclip.services").joinpath("kafka-pom.xml").read_text()
        (work / "pom.xml").write_text(pom.replace("@KAFKA_VERSION@", self._services.kafka_version))
        lib = work / "lib"
        process.run_tool(
            [mvn, "-B", "-q", "-f", str(work / "pom.xml"), "dependency:copy-dependencies",
             "-DincludeScope=runtime", f"-DoutputDirectory={lib}"],
            f"fetching Kafka {self._services.kafka_version} jars from Maven Central",
        )  # fmt: skip
        apis = sorted(lib.glob("log4j-api-*.jar"))
        if not apis:
            raise ServiceError(f"Kafka {self._services.kafka_version} brought no log4j-api jar")
        log4j = apis[-1].name.removeprefix("log4j-api-").removesuffix(".jar")
        # Kafka logs through SLF4J 1.7; without this binding to its log4j2 it logs nothing.
        process.run_tool(
            [mvn, "-B", "-q", "dependency:copy",
             f"-Dartifact=org.apache.logging.log4j:log4j-slf4j-impl:{log4j}",
             f"-DoutputDirectory={lib}"],
            "fetching the log4j2 SLF4J binding from Maven Central",
            cwd=work,
        )  # fmt: skip
        (lib / ".complete").write_text(self._services.kafka_version + "\n")
        shutil.rmtree(self._lib.parent, ignore_errors=True)
        work.rename(self._lib.parent)

    def _configure(self, java: Path) -> None:
        """Write server.properties and log4j2 config; format the storage on first start."""
        data = self._dir / "data"
        self._dir.mkdir(parents=True, exist_ok=True)
        self._props.write_text(render_server_properties(self._kafka, self._services, data))
        log4j = resources.files("harclip.services").joinpath("kafka-log4j2.properties")
        (self._dir / "log4j2.properties").write_text(log4j.read_text())
        if (data / "meta.properties").is_file():
            return
        process.run_tool(
            [str(java), "-cp", f"{self._lib}/*", *self._log4j_flags(), "kafka.tools.StorageTool",
             "format", "-t", cluster_id(), "-c", str(self._props)],
            "formatting Kafka storage",
        )  # fmt: skip

    def _log4j_flags(self) -> list[str]:
        return [f"-Dlog4j2.configurationFile={self._dir / 'log4j2.properties'}"]

    def _command(self, java: Path) -> list[str]:
        heap = self._services.kafka_heap_mb
        return [
            str(java), f"-Xms{heap // 2}m", f"-Xmx{heap}m", "-XX:+UseG1GC",
            "-Djava.awt.headless=true", *self._log4j_flags(),
            "-cp", f"{self._lib}/*", "kafka.Kafka", str(self._props),
        ]  # fmt: skip

    def _ready(self) -> bool:
        return answers(self._kafka)

    def _status(self, state: State, pid: int | None, seconds: float | None = None) -> Status:
        return Status(
            name=self.name,
            state=state,
            address=self._kafka.bootstrap,
            version=self._services.kafka_version,
            pid=pid,
            log=self._log,
            seconds=seconds,
        )


def answers(kafka: KafkaSettings) -> bool:
    """True when the broker at `kafka.bootstrap` answers a metadata request listing a broker.

    Runs its own event loop in a short-lived thread, so it is safe to call from code that
    already has one (async tests, fixtures).
    """
    if not process.port_open(kafka.first_host, kafka.first_port):
        return False
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, _metadata_ok(kafka.bootstrap)).result()


async def _metadata_ok(bootstrap: str) -> bool:
    """True when the broker answers a metadata request and lists itself as a live broker."""
    from aiokafka.client import AIOKafkaClient  # lazy: `harclip --help` stays fast

    quiet = logging.getLogger("aiokafka")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)  # a not-yet-ready broker is expected here, not an error
    client = AIOKafkaClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
    try:
        await client.bootstrap()
        return bool(client.cluster.brokers())
    except Exception:
        return False
    finally:
        await client.close()
        quiet.setLevel(level)
