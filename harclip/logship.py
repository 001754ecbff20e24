"""Ship a service's ECS log lines to Elasticsearch (`harclip-logs-<yyyy.mm.dd>`, read alias
`harclip-logs`) on a machine without Filebeat or Fluent Bit (`HARCLIP_LOG_TO_ELASTICSEARCH=true`).

A logging handler that never blocks the caller: records go to a bounded queue (full: dropped and
counted), and one thread bulk-writes them every `interval_s` or `batch` records (`_bulk` over
httpx). Writes that fail are dropped and counted - the same lines are on stdout anyway. On a
cluster, ship stdout with Fluent Bit instead (infra/logging/).
"""

from __future__ import annotations

import logging
import queue
import sys
import threading
import time
from typing import Any

import httpx
import orjson

from harclip.config import ElasticsearchSettings
from harclip.io.indices import daily_index, templates
from harclip.logformat import EcsFormatter

# The HTTP client's loggers: shipping their records would feed the handler its own writes.
_OWN_LOGGERS = ("httpx", "httpcore")
_FLUSH_TIMEOUT_S = 30.0

Item = dict[str, Any] | threading.Event | None  # a document, a flush marker, or stop


class ElasticsearchLogHandler(logging.Handler):
    """Bulk-writes ECS documents to today's `<logs_index>-<yyyy.mm.dd>` (the record's own day)."""

    def __init__(
        self,
        s: ElasticsearchSettings,
        service: str,
        *,
        batch: int = 500,
        interval_s: float = 1.0,
        capacity: int = 10_000,
    ) -> None:
        super().__init__()
        self._s = s
        self._formatter = EcsFormatter(service)
        self._batch = batch
        self._interval_s = interval_s
        self._queue: queue.Queue[Item] = queue.Queue(capacity)
        self._template_put = False
        self.dropped = 0  # records not queued (queue full)
        self.failed = 0  # records whose write failed
        self.written = 0
        # plain HTTP (httpx), not the Elasticsearch client: two requests, and nothing of the
        # client's connection pool to wait for while the interpreter shuts down
        auth = (s.username, s.password or "") if s.username else None
        self._http = httpx.Client(base_url=s.url, auth=auth, timeout=s.request_timeout_s)
        self._thread = threading.Thread(target=self._run, name="harclip-logship", daemon=True)
        self._thread.start()

    def filter(self, record: logging.LogRecord) -> bool:
        # Runs before `handle` takes the handler's lock: the writer thread's own records (the
        # client logging a retry) must not wait for that lock while `flush` holds it at shutdown.
        if record.name.startswith(_OWN_LOGGERS) or threading.current_thread() is self._thread:
            return False
        return bool(super().filter(record))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            doc = self._formatter.document(record)
            doc["_created_ms"] = record.created * 1000  # the index's day: the record's own
            self._queue.put_nowait(doc)
        except queue.Full:
            self.dropped += 1
        except Exception:  # a record that cannot be formatted must not break the caller
            self.handleError(record)

    def flush(self) -> None:
        """Block until every record emitted so far is written (or failed), at most 30 s."""
        if not self._thread.is_alive():
            return
        done = threading.Event()
        try:
            self._queue.put(done, timeout=_FLUSH_TIMEOUT_S)
        except queue.Full:
            return
        done.wait(_FLUSH_TIMEOUT_S)

    def close(self) -> None:
        if self._thread.is_alive():
            self.flush()
            self._queue.put(None)
            self._thread.join(_FLUSH_TIMEOUT_S)
        self._http.close()
        super().close()

    # -- the writer thread ------------------------------------------------------------------------

    def _run(self) -> None:
        pending: list[dict[str, Any]] = []
        waiters: list[threading.Event] = []
        deadline = 0.0
        while True:
            timeout = max(0.0, deadline - time.monotonic()) if pending else None
            try:
                item = self._queue.get(timeout=timeout)
            except queue.Empty:
                item = {}  # the interval is over
            if isinstance(item, threading.Event):
                waiters.append(item)
            elif item:
                pending.append(item)
                if len(pending) == 1:
                    deadline = time.monotonic() + self._interval_s
            due = pending and (len(pending) >= self._batch or time.monotonic() >= deadline)
            if item is None or waiters or due:
                self._write(pending)
                pending = []
                for w in waiters:
                    w.set()
                waiters = []
            if item is None:
                return

    def _write(self, docs: list[dict[str, Any]]) -> None:
        if not docs:
            return
        try:
            if not self._template_put:
                for t in templates(self._s, None):
                    if t["name"] == self._s.logs_index:
                        body = {"index_patterns": t["index_patterns"], "priority": t["priority"],
                                "template": t["template"], "_meta": t["meta"]}  # fmt: skip
                        self._http.put(
                            f"/_index_template/{t['name']}", json=body
                        ).raise_for_status()
                self._template_put = True
            lines: list[bytes] = []
            for doc in docs:
                at_ms = int(doc.pop("_created_ms"))
                action = {"create": {"_index": daily_index(self._s, "logs", at_ms)}}
                lines += [orjson.dumps(action), orjson.dumps(doc, default=str)]
            answer = self._http.post(
                "/_bulk", content=b"\n".join(lines) + b"\n",
                headers={"Content-Type": "application/x-ndjson"},
            ).raise_for_status()  # fmt: skip
            items = answer.json()["items"]
            errors = sum(1 for i in items if i.get("create", {}).get("error"))
            self.failed += errors
            self.written += len(docs) - errors
        except (httpx.HTTPError, ValueError, KeyError) as e:  # Elasticsearch away: on stdout anyway
            self.failed += len(docs)
            print(f"harclip.logship: {len(docs)} log lines not written: {e}", file=sys.stderr)
