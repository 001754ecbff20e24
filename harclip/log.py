"""Logging set-up shared by every service: ECS JSON on stdout (for Filebeat / Fluent Bit and
Kibana) or plain text for humans."""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    from harclip.config import ElasticsearchSettings


class EcsFormatter(logging.Formatter):
    """One ECS-shaped JSON object per line."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self._service = service

    def format(self, record: logging.LogRecord) -> str:
        return orjson.dumps(self.document(record), default=str).decode()

    def document(self, record: logging.LogRecord) -> dict[str, Any]:
        """The ECS fields of one record (what `format` writes as JSON)."""
        doc: dict[str, Any] = {
            "@timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "log.level": record.levelname.lower(),
            "log.logger": record.name,
            "message": record.getMessage(),
            "service.name": self._service,
            "process.pid": record.process,
        }
        if record.exc_info:
            doc["error.stack_trace"] = self.formatException(record.exc_info)
        extra = getattr(record, "ecs", None)
        if isinstance(extra, dict):
            doc.update(extra)
        return doc


def setup_logging(
    service: str,
    fmt: str = "text",
    level: str = "INFO",
    ship_to: ElasticsearchSettings | None = None,
) -> None:
    """Configure the root logger once for a service process; with `ship_to`, also bulk-write
    the ECS lines to its `harclip-logs` daily indices (harclip.logship)."""
    handler = logging.StreamHandler(sys.stdout if fmt == "ecs" else sys.stderr)
    if fmt == "ecs":
        handler.setFormatter(EcsFormatter(service))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    if ship_to is not None:
        from harclip.logship import ElasticsearchLogHandler

        root.addHandler(ElasticsearchLogHandler(ship_to, service))
    root.setLevel(level.upper())
    for noisy in ("aiokafka", "elastic_transport", "kafka", "httpx"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
