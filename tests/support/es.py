"""Reading Elasticsearch in tests: poll a search until its hits satisfy a condition.

An index made by a first write (a daily index from a template, with its read alias) is in the
cluster state, and its alias resolves, before its primary shard has started: a search in that
moment answers 503 (`search_phase_execution_exception`, no shard available). `hits_until`
treats that as "not yet", like an empty result, and refreshes before each try, so every test
that waits for documents waits the same way."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from elasticsearch import ApiError, AsyncElasticsearch

Hits = list[dict[str, Any]]


async def hits_until(
    es: AsyncElasticsearch,
    index: str,
    done: Callable[[Hits], bool],
    *,
    timeout_s: float = 60.0,
    every_s: float = 0.2,
    **search: Any,
) -> Hits:
    """Refresh `index` and search it (`search` as `es.search` keywords) until `done(hits)`;
    a shard that has not started yet (503) counts as no hits. TimeoutError after `timeout_s`."""
    async with asyncio.timeout(timeout_s):
        while True:
            try:
                await es.indices.refresh(index=index, allow_no_indices=True)
                hits: Hits = (await es.search(index=index, **search))["hits"]["hits"]
            except ApiError as e:
                if e.meta.status not in (404, 503):  # missing yet / shards not started yet
                    raise
                hits = []
            if done(hits):
                return hits
            await asyncio.sleep(every_s)  # polling a condition
