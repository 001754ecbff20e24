"""What flows through the worker's stages: one Kafka record (`Work`), the decode step that turns a
fetched chunk of records into Work items (parse the Frame headers, decode + resize the image), and
a batch's outcome (`BatchResult`: `Predicted` frames, failures, stale frames) that the sinks write
and the worker commits. Anything that fails carries its reason and goes to the dead-letter topic.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from aiokafka.structs import TopicPartition

from harclip.batching import TwoLaneQueue
from harclip.errors import DecodeError, MessageError
from harclip.io.kafka import headers_list
from harclip.messages import Frame, Headers, Prediction, now_ms
from harclip.model.preprocess import decode_image

if TYPE_CHECKING:
    from harclip.engines.gpu_decode import TorchDecoder

LIVE, BULK = TwoLaneQueue.LIVE, TwoLaneQueue.BULK


@dataclass(slots=True)
class Work:
    """A consumed record: its coordinates, the parsed Frame and pixels, or why it failed."""

    tp: TopicPartition
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Headers
    lane: int  # LIVE (harclip.frames) or BULK (harclip.uploads)
    born_at: float  # capture time on the monotonic clock, seconds
    frame: Frame | None = None
    # uint8 [S, S, 3] RGB: numpy, or a torch tensor on the GPU (GPU decode); released once embedded
    pixels: Any = None
    error: str | None = None  # "<kind>: <reason>" for the DLQ's `error` header

    @property
    def droppable(self) -> bool:
        """Only good live frames may be dropped for age; uploads and failures never are."""
        return self.lane == LIVE and self.error is None


@dataclass(slots=True)
class Predicted:
    """A good frame's Prediction and its embedding (float32 [D], for Elasticsearch); `work` keeps
    the record (for the DLQ and the latest frame in Redis), not its pixels."""

    work: Work
    prediction: Prediction
    embedding: np.ndarray
    _json: bytes | None = None

    def json(self) -> bytes:
        """The Prediction's JSON, made once (Kafka and Redis write the same bytes)."""
        if self._json is None:
            self._json = self.prediction.to_json()
        return self._json


@dataclass(slots=True)
class BatchResult:
    """Everything the sink stage writes and commits for one batch."""

    works: list[Work]  # every record of the batch: predicted, failed and stale
    predicted: list[Predicted] = field(default_factory=list)
    failed: list[Work] = field(default_factory=list)  # to the DLQ, `error` set
    stale: list[Work] = field(default_factory=list)  # dropped for age, only committed
    infer_s: float = 0.0  # engine + head, seconds
    started_at_ms: int = 0  # batch start, ms since epoch

    def offsets(self) -> dict[TopicPartition, int]:
        """Per partition, the offset to commit: the batch's highest offset + 1."""
        out: dict[TopicPartition, int] = {}
        for w in self.works:
            out[w.tp] = max(out.get(w.tp, 0), w.offset + 1)
        return out


class CommitGate:
    """Which offsets may be committed after a batch, batches taken in order. A batch that was
    given up (not delivered) holds its partitions back for good: a later batch's commit on them
    would skip its records, so they stay uncommitted and the next owner reads them again."""

    def __init__(self) -> None:
        self.held: set[TopicPartition] = set()

    def after(
        self, result: BatchResult, delivered: bool, assigned: set[TopicPartition]
    ) -> dict[TopicPartition, int]:
        """The offsets to commit for `result` (empty when nothing may be committed)."""
        offsets = result.offsets()
        if not delivered:
            self.held |= offsets.keys()
            return {}
        return {tp: o for tp, o in offsets.items() if tp in assigned and tp not in self.held}


def failure_reason(error: str | None) -> str:
    """The `reason` label of a dead-lettered frame's `error`: its kind before the colon
    (`malformed`, `undecodable`, `inference`), `sink_refused` for `sink <name> refused: ...`."""
    kind = (error or "unknown").split(":", 1)[0]
    return "sink_refused" if kind.startswith("sink ") else kind


class Record:
    """The fields of an aiokafka `ConsumerRecord` the worker reads (typing aid)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes]]


def decode_records(records: Sequence[Record], lane: int, size: int, max_pixels: int) -> list[Work]:
    """Parse and decode `records` (runs in a pool thread; OpenCV releases the GIL)."""
    out = parse_records(records, lane)
    for work in out:
        if work.frame is not None:
            try:
                work.pixels = decode_image(work.frame.data, size, max_pixels=max_pixels)
            except DecodeError as e:
                work.error = f"undecodable: {e}"
    return out


def decode_records_on_device(
    records: Sequence[Record], lane: int, decoder: TorchDecoder
) -> list[Work]:
    """Parse `records` and decode their images as one batch on the decoder's device (nvJPEG),
    frames it refuses on the CPU; each Work's pixels are a row of the device batch."""
    out = parse_records(records, lane)
    good = [w for w in out if w.frame is not None]
    pixels, errors = decoder.decode([w.frame.data for w in good if w.frame is not None])
    for i, (work, err) in enumerate(zip(good, errors, strict=True)):
        if err is None:
            work.pixels = pixels[i]
        else:
            work.error = f"undecodable: {err}"
    return out


def parse_records(records: Sequence[Record], lane: int) -> list[Work]:
    """One Work per record with its Frame parsed (or `malformed` error), not yet decoded.

    Age is measured from the frame's `captured_at` (ms since epoch) and mapped onto the
    monotonic clock, so later staleness checks need no wall clock.
    """
    out: list[Work] = []
    mono, wall_ms = time.monotonic(), now_ms()  # one clock reading for the chunk
    for rec in records:
        headers = headers_list(rec.headers)
        work = Work(
            tp=TopicPartition(rec.topic, rec.partition),
            offset=rec.offset,
            key=rec.key,
            value=rec.value,
            headers=headers,
            lane=lane,
            born_at=mono,
        )
        try:
            frame = Frame.from_kafka(rec.key, rec.value, headers)
        except MessageError as e:
            work.error = f"malformed: {e}"
            out.append(work)
            continue
        work.frame = frame
        work.born_at -= max(0, wall_ms - frame.captured_at) / 1000
        out.append(work)
    return out


async def decode_in_pool(
    pool: Executor, threads: int, records: Sequence[Record], lane: int, size: int, max_pixels: int,
    decoder: TorchDecoder | None = None,
) -> list[Work]:  # fmt: skip
    """`decode_records` over `records` in `pool`, one chunk per thread (`threads`), in order;
    with a GPU `decoder`, all of them as one batch on its device, in one pool thread."""
    loop = asyncio.get_running_loop()
    if decoder is not None:
        return await loop.run_in_executor(pool, decode_records_on_device, records, lane, decoder)
    n = max(1, -(-len(records) // threads))
    parts = await asyncio.gather(*(
        loop.run_in_executor(pool, decode_records, records[i : i + n], lane, size, max_pixels)
        for i in range(0, len(records), n)
    ))  # fmt: skip
    return [w for part in parts for w in part]
