"""The worker's sink decision point (`Delivery.deliver`) with in-memory sinks: transient failures
are retried, frames a sink refuses for good go to the DLQ (acknowledged before `deliver`
returns), the rest is predicted."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest
from aiokafka.errors import OutOfOrderSequenceNumber
from aiokafka.structs import TopicPartition

from consumers.delivery import Delivery, dead_letter
from consumers.inference import run_batch
from consumers.metrics import WorkerMetrics
from consumers.sinks import KafkaSink
from consumers.work import (
    LIVE,
    BatchResult,
    CommitGate,
    Predicted,
    Work,
    decode_records,
    failure_reason,
)
from harclip.batching import Batch
from harclip.config import Settings
from harclip.control import HeadInUse
from harclip.errors import SinkRefused, SinkUnavailable
from harclip.messages import ModelRef
from tests.unit.consumers.test_work import SIZE, FakeEngine, head, jpeg, rec


class MemoryKafka(KafkaSink):
    """The Kafka sink's buffers, written to lists instead of a broker."""

    def __init__(self) -> None:
        super().__init__(Settings().kafka)
        self.predictions: list[str] = []
        self.dlq: list[Work] = []

    async def flush(self) -> None:
        self.predictions += [p.prediction.frame_id for p in self._preds]
        self.dlq += self._failed
        self.clear()


class ScriptedSink:
    """A predictions sink whose flushes raise the scripted errors, then write."""

    def __init__(self, name: str, errors: list[Exception]) -> None:
        self.name = name
        self.errors = errors
        self.buffer: list[Predicted] = []
        self.written: list[str] = []

    async def start(self) -> None:
        pass

    def add(self, result: BatchResult) -> None:
        self.buffer += result.predicted

    async def flush(self) -> None:
        if self.errors:
            raise self.errors.pop(0)
        self.written += [p.prediction.frame_id for p in self.buffer]
        self.clear()

    def clear(self) -> None:
        self.buffer = []

    async def stop(self) -> None:
        pass


def batch(n: int) -> BatchResult:
    works = decode_records([rec(i, jpeg()) for i in range(n)], LIVE, SIZE, max_pixels=10**7)
    in_use = HeadInUse(head(1), ModelRef(name="m", version="1", head_version=1))
    return run_batch(Batch(items=works, stale=[]), FakeEngine(), in_use, top_k=2)


METRICS = WorkerMetrics()


def delivery(*sinks: Any, kafka: MemoryKafka | None = None) -> tuple[Delivery, MemoryKafka]:
    kafka = kafka or MemoryKafka()
    return Delivery([kafka, *sinks], kafka, METRICS), kafka


def retry_error() -> SinkUnavailable:
    return SinkUnavailable("down")


async def test_refused_frames_go_to_the_dlq_and_the_others_are_predicted() -> None:
    result = batch(4)
    ids = [p.prediction.frame_id for p in result.predicted]
    es = ScriptedSink(
        "elasticsearch",
        [
            retry_error(),
            SinkRefused(
                "elasticsearch refused 2 documents",
                {
                    ids[1]: "mapper_parsing_exception: bad",
                    ids[3]: "mapper_parsing_exception: worse",
                },
            ),
        ],
    )
    errors_before = METRICS.total("harclip_sink_errors")
    d, kafka = delivery(es)
    assert await d.deliver(result)
    assert [x.frame.frame_id for x in kafka.dlq if x.frame] == [ids[1], ids[3]]
    assert kafka.dlq[0].error == "sink elasticsearch refused: mapper_parsing_exception: bad"
    assert kafka.predictions == ids  # written before the refusal was known
    assert [p.prediction.frame_id for p in result.predicted] == [ids[0], ids[2]]
    assert result.failed == kafka.dlq
    assert d.trouble == set()
    assert METRICS.total("harclip_sink_errors") - errors_before == 2  # one retry, one refusal


async def test_a_plain_refusal_dead_letters_the_whole_batch_once() -> None:
    result = batch(3)
    refused = SinkRefused("Redis write_predictions: refused: WRONGTYPE")  # names no frame: all
    ids = [p.prediction.frame_id for p in result.predicted]
    es = ScriptedSink("elasticsearch", [SinkRefused("elasticsearch", {ids[0]: "nope"})])
    d, kafka = delivery(ScriptedSink("redis", [refused]), es)
    assert await d.deliver(result)
    assert sorted(x.frame.frame_id for x in kafka.dlq if x.frame) == sorted(ids)  # once each
    assert not result.predicted and len(result.failed) == 3


async def test_the_dlq_must_acknowledge_before_delivery_ends() -> None:
    result = batch(2)
    ids = [p.prediction.frame_id for p in result.predicted]

    class FlakyKafka(MemoryKafka):
        calls = 0

        async def flush(self) -> None:
            self.calls += 1
            if self.calls == 2:  # the DLQ write of the refused frame: retried
                raise SinkUnavailable("broker down")
            await super().flush()

    kafka = FlakyKafka()
    es = ScriptedSink("elasticsearch", [SinkRefused("elasticsearch", {ids[0]: "x"})])
    d, _ = delivery(es, kafka=kafka)
    assert await d.deliver(result)
    assert kafka.calls == 3 and [x.offset for x in kafka.dlq] == [0]


def test_dead_letter_and_failure_reason() -> None:
    result = batch(2)
    first = result.predicted[0].prediction.frame_id
    moved = dead_letter(result, "redis", {first: "why", "other": "x"}, "unused")
    assert [x.offset for x in moved] == [0] and len(result.predicted) == 1
    assert dead_letter(result, "redis", {first: "again"}, "unused") == []
    assert moved[0].error == "sink redis refused: why"
    assert failure_reason(moved[0].error) == "sink_refused"
    assert failure_reason("undecodable: truncated JPEG") == "undecodable"
    assert failure_reason(None) == "unknown"
    assert result.offsets() == {TopicPartition("t", 0): 2}
    assert np.isfinite(result.predicted[0].embedding).all()


def test_a_batch_given_up_holds_its_partitions_back_for_good() -> None:
    """Shutdown: batch N could not be delivered, N+1 was. Committing N+1's offsets would skip N's
    records; only partitions N did not touch may still commit."""
    a, b = TopicPartition("t", 0), TopicPartition("t", 1)

    def result(*coords: tuple[TopicPartition, int]) -> BatchResult:
        return BatchResult(works=[
            Work(tp, offset, None, b"", [], LIVE, born_at=0.0) for tp, offset in coords
        ])  # fmt: skip

    gate = CommitGate()
    assigned = {a, b}
    assert gate.after(result((a, 0), (a, 1)), True, assigned) == {a: 2}
    assert gate.after(result((a, 2), (a, 3)), False, assigned) == {}  # given up
    assert gate.after(result((a, 4), (b, 0)), True, assigned) == {b: 1}  # not a: 4 > 2
    assert gate.after(result((b, 1)), True, {a}) == {}  # revoked meanwhile


class _Producer:
    """Stands in for an aiokafka producer: every send fails with `error`, or is written."""

    def __init__(self, error: Exception | None) -> None:
        self.error, self.sent, self.stopped = error, [], False

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        self.stopped = True

    async def send(self, topic: str, value: bytes, key: Any = None, headers: Any = None) -> Any:
        fut = asyncio.get_running_loop().create_future()
        if self.error is not None:
            fut.set_exception(self.error)
        else:
            self.sent.append(topic)
            fut.set_result(None)
        return fut


async def test_a_producer_whose_sequence_broke_is_replaced(monkeypatch: Any) -> None:
    """After a broker restart aiokafka can be left with a sequence gap: the broker answers every
    later send of that idempotent producer with OUT_OF_ORDER_SEQUENCE_NUMBER, for good (aiokafka
    never resets the producer id). Retrying with the same producer would stall the worker: the
    sink starts a new one before the retry."""
    made: list[_Producer] = []

    def make(s: Any, role: str = "sink") -> _Producer:
        made.append(_Producer(OutOfOrderSequenceNumber() if not made else None))
        return made[-1]

    monkeypatch.setattr("consumers.sinks.make_producer", make)
    sink = KafkaSink(Settings().kafka)
    await sink.start()
    sink.add(batch(2))
    with pytest.raises(SinkUnavailable):
        await sink.flush()
    await sink.flush()  # what Delivery's retry does
    assert len(made) == 2 and made[0].stopped
    assert made[1].sent == [Settings().kafka.topics.predictions] * 2
