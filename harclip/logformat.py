"""The ECS JSON log line (one object per line) that every service writes on stdout and
`harclip.logship` ships to Elasticsearch."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import orjson


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
