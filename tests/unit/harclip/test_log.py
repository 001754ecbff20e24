"""harclip.log and harclip.logship without a server: the ECS document, the handler setup_logging
adds when asked to ship, and the accounting of records that cannot be written."""

from __future__ import annotations

import logging

import orjson

from harclip.config import ElasticsearchSettings
from harclip.log import EcsFormatter, setup_logging
from harclip.logship import ElasticsearchLogHandler

_NOWHERE = ElasticsearchSettings(url="http://127.0.0.1:9", request_timeout_s=1.0)


def _record(msg: str = "hello %s") -> logging.LogRecord:
    return logging.LogRecord("consumers.worker", logging.WARNING, __file__, 1, msg, ("x",), None)


def test_the_ecs_line_is_the_document() -> None:
    f = EcsFormatter("harclip-worker")
    record = _record()
    record.ecs = {"labels": {"stream": "cam1"}}
    doc = f.document(record)
    assert orjson.loads(f.format(record)) == doc
    assert doc["message"] == "hello x" and doc["log.level"] == "warning"
    assert doc["service.name"] == "harclip-worker" and doc["labels"] == {"stream": "cam1"}


def test_setup_logging_ships_only_when_asked() -> None:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        setup_logging("harclip-api", "ecs", "INFO")
        assert not any(isinstance(h, ElasticsearchLogHandler) for h in root.handlers)
        setup_logging("harclip-api", "ecs", "INFO", ship_to=_NOWHERE)
        shipped = [h for h in root.handlers if isinstance(h, ElasticsearchLogHandler)]
        assert len(shipped) == 1
        shipped[0].close()
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)


def test_every_record_is_written_failed_or_dropped_and_client_logs_are_not_shipped() -> None:
    handler = ElasticsearchLogHandler(_NOWHERE, "harclip-api", interval_s=3600, capacity=2)
    try:
        for _ in range(5):
            handler.handle(_record())
        handler.handle(logging.LogRecord("httpx", logging.INFO, __file__, 1, "POST", None, None))
    finally:
        handler.close()  # flushes: what was queued fails (nothing listens on port 9)
    # a full queue drops instead of blocking; the client's own record is not counted at all
    assert (handler.written, handler.dropped + handler.failed) == (0, 5)
