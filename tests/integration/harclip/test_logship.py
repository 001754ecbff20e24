"""harclip.logship against the real Elasticsearch: a service's log line is searchable in the
`harclip-logs` alias (daily index of the line's own day) once the handler flushed."""

from __future__ import annotations

import logging
from datetime import datetime

from elasticsearch import Elasticsearch

from harclip.io.indices import daily_index
from harclip.logship import ElasticsearchLogHandler
from tests.support.scoped import Unique


def test_a_log_line_is_searchable_in_harclip_logs(unique: Unique) -> None:
    s = unique.settings.elasticsearch
    handler = ElasticsearchLogHandler(s, "harclip-worker", interval_s=60.0)
    log = logging.getLogger(unique.name("consumers.worker"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        log.info("batch of %d frames predicted", 16, extra={"ecs": {"labels": {"run": "x"}}})
        try:
            raise ValueError("bad frame")
        except ValueError:
            log.exception("frame failed")
        handler.flush()  # returns once the bulk request answered
    finally:
        log.removeHandler(handler)
        handler.close()
    assert (handler.written, handler.failed, handler.dropped) == (2, 0, 0)

    with Elasticsearch(s.url) as es:
        es.indices.refresh(index=s.logs_index)
        hits = es.search(
            index=s.logs_index,
            query={"bool": {"filter": [
                {"term": {"service.name": "harclip-worker"}},
                {"term": {"log.logger": log.name}},
            ]}},
            sort=[{"@timestamp": "asc"}],
        )["hits"]["hits"]  # fmt: skip
        assert [h["_source"]["message"] for h in hits] == [
            "batch of 16 frames predicted",
            "frame failed",
        ]
        first, second = hits
        assert first["_source"]["log.level"] == "info"
        assert "ValueError: bad frame" in second["_source"]["error.stack_trace"]
        # the daily index of the line's own day, behind the alias
        assert first["_index"].startswith(f"{s.logs_index}-")
        assert first["_index"] == daily_index(s, "logs", _ms(first["_source"]["@timestamp"]))


def _ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso).timestamp() * 1000)


def test_unreachable_elasticsearch_drops_lines_without_blocking(unique: Unique) -> None:
    s = unique.settings.elasticsearch.model_copy(
        update={"url": "http://127.0.0.1:9", "request_timeout_s": 2.0}
    )
    handler = ElasticsearchLogHandler(s, "harclip-api")
    record = logging.LogRecord("api", logging.INFO, __file__, 1, "hello", None, None)
    handler.emit(record)
    handler.flush()
    handler.close()
    assert (handler.written, handler.failed) == (0, 1)
