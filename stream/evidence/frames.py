"""Frames of one stream in a window of capture time, read back from harclip.frames.

Frames are keyed by stream id, so the partition holding a stream is the default partitioner's
(murmur2 of the key modulo the topic's partition count). The reader seeks with
`offsets_for_times` a little before the window (record timestamps are the producer's send time,
close to capture time), reads forward, keeps the stream's frames whose `captured_at` header is
in the window and stops past its end or at the partition's end offset. Bounded: `Window.max_s`
(a longer window keeps its first and last halves), `MAX_FRAMES` and `MAX_BYTES`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.partitioner import murmur2

from harclip.config import KafkaSettings
from harclip.errors import MessageError, SinkUnavailable
from harclip.io.kafka import make_admin, make_consumer
from harclip.messages import Frame

MAX_FRAMES = 3000  # frames of one window kept (60 s at 50 fps)
MAX_BYTES = 256 * 1024 * 1024  # JPEG bytes of one window kept
SEEK_SLACK_MS = 5000  # record timestamps (send time) may trail or lead capture time this much
_POLL_MS = 500

Missing = Literal["frames_expired", "no_frames"]


def partition_of(stream_id: str, partitions: int) -> int:
    """The partition the default partitioner (Java's and aiokafka's) gives key `stream_id`."""
    return int(murmur2(stream_id.encode()) & 0x7FFFFFFF) % partitions


async def partition_count(kafka: KafkaSettings, topic: str) -> int:
    """The topic's real partition count; `SinkUnavailable` without Kafka or the topic."""
    admin = make_admin(kafka)
    try:
        await admin.start()
        described = await admin.describe_topics([topic])
    except KafkaError as e:
        raise SinkUnavailable(f"Kafka at {kafka.bootstrap}: {e!r}") from e
    finally:
        await admin.close()
    n = sum(len(d["partitions"]) for d in described if d.get("error_code", 0) == 0)
    if not n:
        raise SinkUnavailable(f"topic {topic} has no partitions (does it exist?)")
    return n


@dataclass(frozen=True, slots=True)
class Window:
    """[start, end] of capture time, ms; at most `max_s` seconds are kept."""

    start: int
    end: int
    max_s: float = 60.0

    def keeps(self, at: int) -> bool:
        if not self.start <= at <= self.end:
            return False
        half = int(self.max_s * 500)
        if self.end - self.start <= 2 * half:
            return True
        return at <= self.start + half or at >= self.end - half


@dataclass(slots=True)
class Frames:
    """What a read found: the stream's frames in capture order, or why there are none."""

    frames: list[Frame] = field(default_factory=list)
    missing: Missing | None = None
    truncated: bool = False  # a frame or byte cap was reached


class FrameReader:
    """Reads windows of frames of harclip.frames (one consumer, no group, assigned by hand)."""

    def __init__(self, kafka: KafkaSettings, topic: str) -> None:
        self._kafka = kafka
        self._topic = topic
        self._consumer: AIOKafkaConsumer | None = None
        self._partitions = 0
        self._lock = asyncio.Lock()  # one read at a time: each seeks the one consumer

    async def start(self) -> None:
        self._partitions = await partition_count(self._kafka, self._topic)
        c = make_consumer(self._kafka, group_id=None, enable_auto_commit=False)
        try:
            await c.start()
        except KafkaError as e:
            raise SinkUnavailable(f"Kafka at {self._kafka.bootstrap}: {e!r}") from e
        self._consumer = c

    async def stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None

    async def read(self, stream_id: str, window: Window) -> Frames:
        """The frames of `stream_id` captured in `window`; `SinkUnavailable` if Kafka fails."""
        async with self._lock:
            return await self._read(stream_id, window)

    async def _read(self, stream_id: str, window: Window) -> Frames:
        c = self._consumer
        if c is None:
            raise RuntimeError("FrameReader.read before start")
        tp = TopicPartition(self._topic, partition_of(stream_id, self._partitions))
        try:
            c.assign([tp])
            first = (await c.beginning_offsets([tp]))[tp]
            last = (await c.end_offsets([tp]))[tp]
            found = (await c.offsets_for_times({tp: max(0, window.start - SEEK_SLACK_MS)}))[tp]
            if found is None:  # nothing at or after the window's start
                gone = first > 0 and first == last  # all it held was deleted (retention)
                return Frames(missing="frames_expired" if gone else "no_frames")
            if first > 0 and found.offset == first and found.timestamp > window.start:
                return Frames(missing="frames_expired")  # what came before was deleted
            c.seek(tp, found.offset)
            out = await self._scan(c, tp, stream_id, window, last)
        except KafkaError as e:
            raise SinkUnavailable(f"Kafka at {self._kafka.bootstrap}: {e!r}") from e
        if not out.frames:
            out.missing = "no_frames"
        return out

    async def _scan(
        self, c: AIOKafkaConsumer, tp: TopicPartition, stream_id: str, window: Window, last: int
    ) -> Frames:
        out = Frames()
        size = 0
        key = stream_id.encode()
        while True:
            batch = (await c.getmany(tp, timeout_ms=_POLL_MS)).get(tp, [])
            for r in batch:
                if r.offset >= last or r.timestamp > window.end + SEEK_SLACK_MS:
                    return _ordered(out)
                if r.key != key:
                    continue
                try:
                    f = Frame.from_kafka(r.key, r.value, _headers(r.headers))
                except MessageError:
                    continue  # not a frame: nothing to show
                if f.captured_at > window.end + SEEK_SLACK_MS:
                    return _ordered(out)  # the stream's frames come in capture order
                if not window.keeps(f.captured_at):
                    continue
                if len(out.frames) >= MAX_FRAMES or size + len(f.data) > MAX_BYTES:
                    out.truncated = True
                    return _ordered(out)
                out.frames.append(f)
                size += len(f.data)
            if not batch and await c.position(tp) >= last:
                return _ordered(out)


def _headers(h: Sequence[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
    return list(h)


def _ordered(out: Frames) -> Frames:
    out.frames.sort(key=lambda f: (f.captured_at, f.seq))
    return out
