"""Logging set-up shared by every service: ECS JSON on stdout (for Filebeat / Fluent Bit and
Kibana) or plain text for humans."""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING

from harclip.logformat import EcsFormatter

if TYPE_CHECKING:
    from harclip.config import ElasticsearchSettings

__all__ = ["EcsFormatter", "setup_logging"]


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
