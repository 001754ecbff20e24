"""Names unique to one test (or one session) and the cleanup of what was made under them: Kafka
topics, Elasticsearch indices and templates, Redis keys, the object-store bucket."""

from __future__ import annotations

import asyncio
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from harclip.config import Settings


@dataclass(frozen=True)
class Unique:
    """Names that belong to one test; `settings` already uses them everywhere."""

    suffix: str  # 10 lowercase hex digits
    settings: Settings

    def name(self, base: str) -> str:
        """`base` made unique to this test, valid as a topic, index, group or key name."""
        return f"{base}-{self.suffix}"


def new_suffix() -> str:
    return uuid.uuid4().hex[:10]


def scoped(settings: Settings, suffix: str) -> Settings:
    """`settings` with topics, consumer group, client id, indices and Redis keys unique to
    `suffix`, an object-store bucket of its own, and health servers (`metrics.port`) on any
    free port."""
    k, r, e, o = settings.kafka, settings.redis, settings.elasticsearch, settings.objects
    return settings.model_copy(update={
        "kafka": k.model_copy(update={
            "topics": k.topics.with_prefix(f"test-{suffix}."),
            "group_id": f"{k.group_id}-{suffix}", "client_id": f"{k.client_id}-{suffix}"}),
        "redis": r.model_copy(update={"key_prefix": f"{r.key_prefix}-{suffix}"}),
        "elasticsearch": e.model_copy(update={
            "predictions_index": f"{e.predictions_index}-{suffix}",
            "events_index": f"{e.events_index}-{suffix}",
            "logs_index": f"{e.logs_index}-{suffix}",
            "feedback_index": f"{e.feedback_index}-{suffix}"}),
        "objects": o.model_copy(update={"bucket": f"{o.bucket}-{suffix}"}),
        "metrics": settings.metrics.model_copy(update={"port": 0}),
    })  # fmt: skip


def cleanup(settings: Settings, suffix: str) -> None:
    """Delete what was made under `suffix`: indices, templates, Redis keys, topics (of the
    services `settings` points at). Callable from inside an event loop too."""
    import redis
    from elasticsearch import Elasticsearch

    with Elasticsearch(settings.elasticsearch.url) as es:
        es.indices.delete(index=f"*{suffix}*", ignore_unavailable=True, allow_no_indices=True)
        es.options(ignore_status=404).indices.delete_index_template(name=f"*{suffix}*")
    with redis.Redis.from_url(settings.redis.url) as client:
        keys = list(client.scan_iter(match=f"*{suffix}*", count=1000))
        if keys:
            client.delete(*keys)
    with ThreadPoolExecutor(max_workers=1) as pool:  # own loop: callers may be inside one
        pool.submit(asyncio.run, _delete_topics(settings.kafka.bootstrap, suffix)).result()
    _delete_bucket(settings, f"{settings.objects.bucket}-{suffix}")


def _delete_bucket(settings: Settings, bucket: str) -> None:
    """The bucket and every object in it, if the test made one."""
    import boto3
    from botocore.exceptions import ClientError

    o = settings.objects
    client = boto3.client(
        "s3", endpoint_url=o.url, region_name=o.region, aws_access_key_id=o.access_key,
        aws_secret_access_key=o.secret_key.get_secret_value(),
    )  # fmt: skip
    try:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            keys = [{"Key": c["Key"]} for c in page.get("Contents", [])]
            if keys:
                client.delete_objects(Bucket=bucket, Delete={"Objects": keys})
        client.delete_bucket(Bucket=bucket)
    except ClientError as e:
        if e.response.get("Error", {}).get("Code") not in ("NoSuchBucket", "404"):
            raise
    finally:
        client.close()


async def _delete_topics(bootstrap: str, suffix: str) -> None:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        topics = [t for t in await admin.list_topics() if suffix in t]
        if topics:
            await admin.delete_topics(topics)
    finally:
        await admin.close()
