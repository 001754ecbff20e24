"""The health server of the worker and the events app over a real socket: a huge request head
is answered 431 (no traceback in the log), a Host that could be an attacker's DNS name is
refused, and `/ready` names what is missing to loopback clients only."""

from __future__ import annotations

import asyncio
import logging

import pytest
from prometheus_client import CollectorRegistry

from harclip.health import HealthServer, host_allowed


async def _ask(port: int, head: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(head)
    await writer.drain()
    answer = await reader.read()
    writer.close()
    return answer


async def test_a_70_kb_head_is_a_431_not_an_error(caplog: pytest.LogCaptureFixture) -> None:
    server = HealthServer("127.0.0.1", 0, CollectorRegistry(), list)
    await server.start()
    try:
        with caplog.at_level(logging.DEBUG):
            big = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: " + b"a" * 70_000
            answer = await _ask(server.port, big + b"\r\n\r\n")
            assert answer.startswith(b"HTTP/1.1 431 ")
            ok = await _ask(server.port, b"GET /health HTTP/1.1\r\nHost: localhost:9300\r\n\r\n")
            assert ok.startswith(b"HTTP/1.1 200 OK") and ok.endswith(b"ok\n")
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    finally:
        await server.stop()


async def test_a_foreign_host_is_refused() -> None:
    server = HealthServer("127.0.0.1", 0, CollectorRegistry(), list)
    await server.start()
    try:
        for host in (b"evil.example", b"evil.example:9300", b"127.0.0.1.nip.io"):
            answer = await _ask(
                server.port, b"GET /metrics HTTP/1.1\r\nHost: " + host + b"\r\n\r\n"
            )
            assert answer.startswith(b"HTTP/1.1 421 "), host
            assert b"harclip" not in answer and b"python_" not in answer
        answer = await _ask(server.port, b"GET /metrics HTTP/1.1\r\nHost: worker:9300\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 200 OK")
    finally:
        await server.stop()


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        (None, True), ("127.0.0.1:9300", True), ("10.1.2.3", True), ("[::1]:9300", True),
        ("localhost", True), ("worker:9300", True), ("harclip-worker.harclip.svc", True),
        ("harclip-worker.harclip.svc.cluster.local:9300", True), ("box.internal", True),
        ("evil.example", False), ("attacker.com:9300", False), ("", False),
    ],
)  # fmt: skip
def test_host_rule(host: str | None, allowed: bool) -> None:
    assert host_allowed(host) is allowed


def test_ready_names_what_is_missing_to_loopback_only() -> None:
    missing = ["kafka broker kafka-0.internal:9092 unreachable"]
    server = HealthServer("127.0.0.1", 0, CollectorRegistry(), lambda: missing)
    status, _, body = server.route("/ready")
    assert status == 503 and b"kafka-0.internal:9092" in body
    status, _, body = server.route("/ready", detail=False)
    assert status == 503 and body == b"not ready: 1 checks failing\n"
