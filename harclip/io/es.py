"""The Elasticsearch client harclip uses (asyncio, httpx transport, orjson bodies, no retries of
its own) and the one classification of its failures into transient and permanent faults
(`harclip.io.errors`). Works against a bare Elasticsearch (the integ-test build: no ILM, data
streams, painless or analysis plugins); never calls `GET /`.
"""

from __future__ import annotations

from typing import Any

import orjson
from elastic_transport import ConnectionError as TransportConnectionError
from elastic_transport import ConnectionTimeout, HttpxAsyncHttpNode
from elasticsearch import ApiError, AsyncElasticsearch
from elasticsearch.serializer import NdjsonSerializer, OrjsonSerializer

from harclip.config import ElasticsearchSettings
from harclip.io.errors import Fault, mapped


class _OrjsonNdjson(NdjsonSerializer):
    """NDJSON (bulk bodies) through orjson; numpy arrays are written natively."""

    def json_dumps(self, data: Any) -> bytes:
        return orjson.dumps(data, default=self.default, option=orjson.OPT_SERIALIZE_NUMPY)

    def json_loads(self, data: bytes) -> Any:
        return orjson.loads(data)


def make_es(s: ElasticsearchSettings) -> AsyncElasticsearch:
    """An asyncio client (httpx transport, orjson bodies); connects on the first request."""
    auth = (s.username, s.password or "") if s.username else None
    return AsyncElasticsearch(
        s.url,
        basic_auth=auth,
        request_timeout=s.request_timeout_s,
        node_class=HttpxAsyncHttpNode,
        serializers={
            "application/json": OrjsonSerializer(),
            "application/x-ndjson": _OrjsonNdjson(),
        },
        max_retries=0,  # the worker owns retries (with backoff and backpressure)
    )


def _classify(e: BaseException) -> tuple[Fault, str] | None:
    """No answer, 429 and 5xx are transient; any other refusal is permanent, with its reason."""
    if isinstance(e, TransportConnectionError | ConnectionTimeout):
        return "transient", str(e.message)
    if isinstance(e, ApiError):
        transient = transient_status(e.status_code) or reason(e).startswith(TRANSIENT_TYPES)
        return ("transient" if transient else "permanent"), f"{e.status_code} {reason(e)}"
    return None


# Refusals that end by themselves or by an operator's hand, not by changing the document: a write
# block (flood-stage disk watermark, `index.blocks.write`, a read-only index), rejected execution
# (queues full), a shard not available yet.
TRANSIENT_TYPES = (
    "cluster_block_exception",
    "es_rejected_execution_exception",
    "unavailable_shards_exception",
    "no_shard_available_action_exception",
)


def transient_status(status: int) -> bool:
    return status == 429 or status >= 500


es_errors = mapped("Elasticsearch", _classify)


def reason(e: ApiError) -> str:
    info = e.info if isinstance(e.info, dict) else {}
    err = info.get("error")
    if isinstance(err, dict):
        return f"{err.get('type')}: {err.get('reason')}"
    return str(e.message)
