"""aiokafka clients built from `KafkaSettings`: producers, consumers, the project's topics and a
readiness check. Every part of harclip that talks to Kafka gets its client here.

Clients are returned unstarted: the owner calls `await client.start()` (in its own `start()`),
and `stop()` when done.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Literal

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, errors
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from harclip.config import KafkaSettings
from harclip.errors import MessageError, Unavailable
from harclip.messages import Frame, Headers

log = logging.getLogger(__name__)

ProducerRole = Literal["live", "bulk", "sink"]

# Bytes of one producer batch per partition, by role. aiokafka keeps one open batch per
# partition and one in-flight request per broker; `send()` waits when the open batch is full.
# So the batch size is the producer's buffer: a live camera gets a small one so that a slow broker
# pushes back after a few frames (and the camera drops its oldest unsent frame instead of queueing
# stale ones), bulk uploads get a large one for throughput, sinks sit between.
_BATCH_BYTES: dict[ProducerRole, int] = {
    "live": 64 * 1024,
    "bulk": 1024 * 1024,
    "sink": 256 * 1024,
}

_RETRY_S = 0.2  # pause between readiness probes, seconds


def security_options(s: KafkaSettings) -> dict[str, Any]:
    """aiokafka keyword arguments for `s.security_protocol`: SASL user and mechanism, and an SSL
    context (the CA, and the client certificate for mTLS). Empty for PLAINTEXT."""
    if s.security_protocol == "PLAINTEXT":
        return {}
    out: dict[str, Any] = {"security_protocol": s.security_protocol}
    if s.security_protocol.startswith("SASL"):
        out |= {
            "sasl_mechanism": s.sasl_mechanism,
            "sasl_plain_username": s.username,
            "sasl_plain_password": s.password.get_secret_value(),
        }
    if s.security_protocol.endswith("SSL"):
        out["ssl_context"] = ssl_context(s)
    return out


def ssl_context(s: KafkaSettings) -> ssl.SSLContext:
    """Verifies the brokers' certificates against `ssl_cafile` (else the system CAs); presents
    `ssl_certfile`/`ssl_keyfile` when set (mTLS)."""
    context = ssl.create_default_context(cafile=s.ssl_cafile or None)
    if s.ssl_certfile:
        context.load_cert_chain(s.ssl_certfile, s.ssl_keyfile)
    return context


def broker_credentials(s: KafkaSettings) -> Any:
    """The events app's (Faust's) `broker_credentials` for the same settings; None: PLAINTEXT."""
    if s.security_protocol == "PLAINTEXT":
        return None
    from faust.auth import SASLCredentials, SSLCredentials  # only the events app has Faust

    context = ssl_context(s) if s.security_protocol.endswith("SSL") else None
    if s.security_protocol.startswith("SASL"):
        return SASLCredentials(username=s.username, password=s.password.get_secret_value(),
                               ssl_context=context, mechanism=s.sasl_mechanism)  # fmt: skip
    return SSLCredentials(context)


def faust_broker(s: KafkaSettings, role: str) -> dict[str, Any]:
    """A Faust app's broker settings: the brokers, a client id for `role`, the credentials."""
    return {
        "broker": [f"kafka://{h.strip()}" for h in s.bootstrap.split(",")],
        "broker_client_id": f"{s.client_id}-{role}",
        "broker_credentials": broker_credentials(s),
    }


def producer_options(s: KafkaSettings, role: ProducerRole = "sink") -> dict[str, Any]:
    """`AIOKafkaProducer` keyword arguments of an idempotent producer (acks=all) for `role`.

    aiokafka sends at most one request per broker at a time, so in-flight data is bounded by
    `role`'s batch size per partition (`_BATCH_BYTES`) and `s.producer_max_in_flight` (<= 5,
    which idempotence allows) holds by construction. A single record may be up to
    `s.max_message_bytes` (it then travels in a batch of its own).
    """
    return {
        "bootstrap_servers": s.bootstrap,
        "client_id": f"{s.client_id}-{role}",
        "acks": "all",
        "enable_idempotence": True,
        "linger_ms": s.producer_linger_ms,
        "max_batch_size": _BATCH_BYTES[role],
        "max_request_size": s.max_message_bytes,
        "request_timeout_ms": s.request_timeout_ms,
        **security_options(s),
    }


def make_producer(s: KafkaSettings, *, role: ProducerRole = "sink") -> AIOKafkaProducer:
    """An unstarted producer with `producer_options(s, role)`."""
    return AIOKafkaProducer(**producer_options(s, role))


# Kafka errors that retrying cannot cure: the record or the request is refused as it is. Every
# other KafkaError (timeouts, no leader, not enough replicas, a lost connection) is transient,
# whatever its `retriable` flag says (aiokafka marks its own delivery timeout not retriable).
PERMANENT_ERRORS: tuple[type[KafkaError], ...] = (
    errors.MessageSizeTooLargeError,
    errors.RecordTooLargeError,
    errors.RecordListTooLargeError,
    errors.CorruptRecordException,
    errors.InvalidTopicError,
    errors.TopicAuthorizationFailedError,
    errors.ClusterAuthorizationFailedError,
    errors.PolicyViolationError,
    errors.UnsupportedVersionError,
)


def is_permanent(e: BaseException) -> bool:
    """Whether a Kafka error refuses the record for good (see PERMANENT_ERRORS)."""
    return isinstance(e, PERMANENT_ERRORS)


# Errors after which an idempotent aiokafka producer fails every later send to that partition:
# a batch lost with its sequence number (a broker restart) leaves a gap that aiokafka never
# closes, as it does not reset its producer id (the Java client bumps the epoch). Transient for
# the record, but the producer that got one must be replaced by a new one.
RENEW_PRODUCER_ERRORS: tuple[type[KafkaError], ...] = (
    errors.OutOfOrderSequenceNumber,
    errors.UnknownProducerId,
)


def needs_new_producer(e: BaseException | None) -> bool:
    """Whether the producer that got `e` must be replaced (see RENEW_PRODUCER_ERRORS)."""
    return isinstance(e, RENEW_PRODUCER_ERRORS)


class FrameTooLarge(MessageError):
    """A frame (image + headers) does not fit in one Kafka message."""


async def send_frame(
    producer: AIOKafkaProducer, topic: str, frame: Frame
) -> asyncio.Future[object]:
    """Queue `frame` (key = stream_id, headers per DESIGN.md); waits while the producer's batch for
    that partition is full. Returns the delivery future. `FrameTooLarge` before anything is sent
    when the frame is over the producer's `max_request_size` (HARCLIP_KAFKA__MAX_MESSAGE_BYTES)."""
    try:
        fut: asyncio.Future[object] = await producer.send(
            topic, frame.data, key=frame.stream_id.encode(), headers=frame.headers()
        )
    except errors.MessageSizeTooLargeError:
        raise FrameTooLarge(
            f"frame {frame.frame_id} of stream {frame.stream_id!r} is {len(frame.data):,} bytes: "
            "over the Kafka message limit (HARCLIP_KAFKA__MAX_MESSAGE_BYTES); send it smaller "
            "(the producers resize to a 224-pixel short side by default)"
        ) from None
    return fut


class RenewingProducer:
    """The producer of frames (cameras, uploads, the API's ingest): an idempotent aiokafka
    producer that is replaced by a fresh one (`make`) before the next send once a delivery failed
    with an error that breaks its sequence (RENEW_PRODUCER_ERRORS), so a broker restart never
    leaves it refusing every later frame. The frames whose deliveries failed stay failed (their
    futures say so); the ones after go through the new producer."""

    def __init__(
        self, producer: AIOKafkaProducer, make: Callable[[], Awaitable[AIOKafkaProducer]]
    ) -> None:
        self.producer = producer
        self._make = make
        self._broken = False
        self.renewed = 0  # producers replaced so far

    async def send_frame(self, topic: str, frame: Frame) -> asyncio.Future[object]:
        """`send_frame` on the current producer (renewed first when it broke)."""
        if self._broken:
            await self._renew()
        fut = await send_frame(self.producer, topic, frame)
        if fut.done():
            self._check(fut)
        else:  # runs before whoever awaits it resumes (it was added first)
            fut.add_done_callback(self._check)
        return fut

    def _check(self, fut: asyncio.Future[object]) -> None:
        if not fut.cancelled() and needs_new_producer(fut.exception()):
            self._broken = True

    async def _renew(self) -> None:
        old = self.producer
        self.producer = await self._make()
        self._broken = False
        self.renewed += 1
        log.warning("Kafka refused the producer's sequence (broker restart): new producer")
        with contextlib.suppress(KafkaError):
            await old.stop()  # what it still held fails through its futures

    async def flush(self) -> None:
        await self.producer.flush()

    async def stop(self) -> None:
        await self.producer.stop()


def consumer_options(
    s: KafkaSettings, *, group_id: str | None = None, **overrides: Any
) -> dict[str, Any]:
    """`AIOKafkaConsumer` keyword arguments: in `group_id` (default `s.group_id`), commits only
    when told, and a new group starts at the earliest offset so nothing is skipped. `overrides`
    win (e.g. `max_poll_records`)."""
    return {
        "bootstrap_servers": s.bootstrap,
        "client_id": s.client_id,
        "group_id": s.group_id if group_id is None else group_id,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "request_timeout_ms": s.request_timeout_ms,
        "max_partition_fetch_bytes": max(1024 * 1024, s.max_message_bytes),
        "fetch_max_bytes": max(50 * 1024 * 1024, s.max_message_bytes),
        **security_options(s),
        **overrides,
    }


def make_consumer(
    s: KafkaSettings, *topics: str, group_id: str | None = None, **overrides: Any
) -> AIOKafkaConsumer:
    """An unstarted consumer of `topics` with `consumer_options(s, group_id=..., **overrides)`."""
    return AIOKafkaConsumer(*topics, **consumer_options(s, group_id=group_id, **overrides))


def make_admin(s: KafkaSettings) -> AIOKafkaAdminClient:
    """An unstarted admin client."""
    return AIOKafkaAdminClient(
        bootstrap_servers=s.bootstrap,
        client_id=f"{s.client_id}-admin",
        request_timeout_ms=s.request_timeout_ms,
        **security_options(s),
    )


def headers_list(headers: Iterable[tuple[str, bytes | None]] | None) -> Headers:
    """aiokafka's record headers (a tuple, values may be None) as `list[(name, bytes)]`."""
    return [(k, v if v is not None else b"") for k, v in headers or ()]


async def wait_kafka(s: KafkaSettings, timeout_s: float) -> None:
    """Return once Kafka answers a metadata request, or raise `Unavailable` after `timeout_s`
    seconds naming the address and the last error."""
    deadline = time.monotonic() + timeout_s
    last: BaseException | None = None
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise Unavailable(
                f"Kafka at {s.bootstrap} did not answer within {timeout_s:g} s "
                f"(last error: {last!r}); is it running? (`harclip services status`)"
            )
        try:
            await asyncio.wait_for(_metadata(s, left), timeout=left)
            return
        except (KafkaError, OSError, TimeoutError) as e:
            last = e
        await asyncio.sleep(min(_RETRY_S, max(0.0, deadline - time.monotonic())))


async def _metadata(s: KafkaSettings, timeout_s: float) -> list[str]:
    admin = AIOKafkaAdminClient(
        bootstrap_servers=s.bootstrap,
        client_id=f"{s.client_id}-admin",
        request_timeout_ms=max(1000, min(s.request_timeout_ms, int(timeout_s * 1000))),
        **security_options(s),
    )
    try:
        await admin.start()
        topics: list[str] = await admin.list_topics()
        return topics
    finally:
        await admin.close()
