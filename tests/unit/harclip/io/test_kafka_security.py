"""The Kafka client configuration built from `HARCLIP_KAFKA__*` security settings: SASL/SCRAM,
TLS and mTLS options for aiokafka's producers, consumers and admin clients, and Faust's
credentials; invalid combinations are refused with the field named."""

from __future__ import annotations

import asyncio
import ssl
import subprocess
from pathlib import Path

import pytest
from faust.auth import SASLCredentials, SSLCredentials
from pydantic import ValidationError

from harclip.config import KafkaSettings
from harclip.io.kafka import (
    broker_credentials,
    consumer_options,
    faust_broker,
    make_admin,
    producer_options,
    security_options,
)


def test_plaintext_adds_nothing() -> None:
    s = KafkaSettings()
    assert security_options(s) == {} and broker_credentials(s) is None
    assert "security_protocol" not in producer_options(s)


def test_scram_over_plaintext() -> None:
    s = KafkaSettings(security_protocol="SASL_PLAINTEXT", username="harclip-api",
                      password="pw")  # type: ignore[arg-type]  # fmt: skip
    want = {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "SCRAM-SHA-512",
            "sasl_plain_username": "harclip-api", "sasl_plain_password": "pw"}  # fmt: skip
    assert security_options(s) == want
    for options in (producer_options(s), consumer_options(s, max_poll_records=5)):
        assert want.items() <= options.items()
    assert asyncio.run(_admin_user(s)) == "harclip-api"
    creds = faust_broker(s, "stream")["broker_credentials"]
    assert isinstance(creds, SASLCredentials) and creds.username == "harclip-api"
    assert creds.ssl_context is None


def test_scram_over_tls_with_a_ca(tmp_path: Path) -> None:
    ca = _self_signed(tmp_path)
    s = KafkaSettings(security_protocol="SASL_SSL", username="u", password="p",  # type: ignore[arg-type]
                      ssl_cafile=str(ca[0]))  # fmt: skip
    options = security_options(s)
    assert isinstance(options["ssl_context"], ssl.SSLContext)
    assert options["ssl_context"].verify_mode == ssl.CERT_REQUIRED
    creds = broker_credentials(s)
    assert isinstance(creds, SASLCredentials) and creds.ssl_context is not None


def test_mtls_loads_the_client_certificate(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    s = KafkaSettings(security_protocol="SSL", ssl_cafile=str(cert), ssl_certfile=str(cert),
                      ssl_keyfile=str(key))  # fmt: skip
    assert security_options(s)["security_protocol"] == "SSL"
    assert isinstance(broker_credentials(s), SSLCredentials)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"security_protocol": "SASL_SSL"}, "needs kafka.username and kafka.password"),
        ({"security_protocol": "SSL", "ssl_certfile": "c.pem"}, "go together"),
        ({"ssl_cafile": "ca.pem"}, "need security_protocol SSL or SASL_SSL"),
        ({"security_protocol": "SASL"}, "security_protocol"),
    ],
)
def test_bad_combinations_are_refused(fields: dict[str, str], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        KafkaSettings(**fields)  # type: ignore[arg-type]


async def _admin_user(s: KafkaSettings) -> str:
    admin = make_admin(s)  # aiokafka builds clients inside a running loop
    return str(admin._client._sasl_plain_username)


def _self_signed(folder: Path) -> tuple[Path, Path]:
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
         "/CN=harclip-test", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key
