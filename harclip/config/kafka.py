"""The Kafka section (`HARCLIP_KAFKA__*`): brokers, topic names, topic creation, producers."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from harclip.config.base import _Section


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
    # authentication (Strimzi: SCRAM-SHA-512 on the listener, a KafkaUser per deployable with
    # ACLs; docs/deploy.md "Kafka clients authenticate")
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="SASL_* sends username/password; *SSL encrypts (and mTLS)"
    )
    sasl_mechanism: Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"] = "SCRAM-SHA-512"
    username: str = Field("", description="SASL user (Strimzi: the KafkaUser's name)")
    password: SecretStr = Field(SecretStr(""), description="SASL password (the user's Secret)")
    ssl_cafile: str = Field("", description="CA bundle (PEM) of the brokers; empty: the system's")
    ssl_certfile: str = Field("", description="client certificate (PEM), for mTLS")
    ssl_keyfile: str = Field("", description="client key (PEM), for mTLS")

    @field_validator("bootstrap")
    @classmethod
    def _check_bootstrap(cls, v: str) -> str:
        for hostport in v.split(","):
            host, sep, port = hostport.strip().rpartition(":")
            if not sep or not host or not port.isdigit():
                raise ValueError(f"expected host:port[,host:port...], got {v!r}")
        return v

    @model_validator(mode="after")
    def _check_security(self) -> KafkaSettings:
        if self.security_protocol.startswith("SASL") and not (
            self.username and self.password.get_secret_value()
        ):
            raise ValueError(
                f"kafka.security_protocol {self.security_protocol} needs kafka.username and "
                "kafka.password"
            )
        if bool(self.ssl_certfile) != bool(self.ssl_keyfile):
            raise ValueError("kafka.ssl_certfile and kafka.ssl_keyfile go together (mTLS)")
        if (self.ssl_cafile or self.ssl_certfile) and not self.security_protocol.endswith("SSL"):
            raise ValueError(
                f"kafka.ssl_* files need security_protocol SSL or SASL_SSL, not "
                f"{self.security_protocol}"
            )
        return self

    @property
    def first_host(self) -> str:
        return self.bootstrap.split(",")[0].strip().rpartition(":")[0]

    @property
    def first_port(self) -> int:
        return int(self.bootstrap.split(",")[0].rpartition(":")[2])
