"""The worker's sink decision point with in-memory sinks: retriable failures are retried, frames a
sink refuses for good go to the DLQ (acknowledged before `_deliver` returns), the rest is
predicted."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
from aiokafka.structs import TopicPartition

from consumers.inference import BatchResult, Predicted, run_batch
from consumers.sinks import KafkaSink, SinkRefused
from consumers.work import LIVE, Work, decode_records, failure_reason
from consumers.worker import Worker, dead_letter
from harclip.batching import Batch
from harclip.config import Settings
from harclip.errors import SinkUnavailable
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
    model = ModelRef(name="m", version="1", head_version=1)
    return run_batch(Batch(items=works, stale=[]), FakeEngine(), head(1), model, top_k=2)


def worker(*sinks: Any) -> tuple[Worker, MemoryKafka]:
    bundle: Any = SimpleNamespace(load_head=lambda: head(1))
    w = Worker(Settings(), bundle)
    kafka = MemoryKafka()
    w._kafka = kafka
    w._sinks = [kafka, *sinks]
    return w, kafka


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
                "elasticsearch",
                {
                    ids[1]: "mapper_parsing_exception: bad",
                    ids[3]: "mapper_parsing_exception: worse",
                },
            ),
        ],
    )
    w, kafka = worker(es)
    assert await w._deliver(result)
    assert [x.frame.frame_id for x in kafka.dlq if x.frame] == [ids[1], ids[3]]
    assert kafka.dlq[0].error == "sink elasticsearch refused: mapper_parsing_exception: bad"
    assert kafka.predictions == ids  # written before the refusal was known
    assert [p.prediction.frame_id for p in result.predicted] == [ids[0], ids[2]]
    assert result.failed == kafka.dlq
    assert w._sink_trouble == set()
    w._account(result, True)
    m = w.metrics.registry
    assert m.get_sample_value("harclip_frames_failed_total", {"reason": "sink_refused"}) == 2
    assert m.get_sample_value("harclip_frames_predicted_total") == 2
    assert m.get_sample_value("harclip_sink_errors_total", {"sink": "elasticsearch"}) == 2


async def test_a_plain_refusal_dead_letters_the_whole_batch_once() -> None:
    result = batch(3)
    refused = SinkUnavailable("Redis refused a command: WRONGTYPE")
    refused.retriable = False
    ids = [p.prediction.frame_id for p in result.predicted]
    es = ScriptedSink("elasticsearch", [SinkRefused("elasticsearch", {ids[0]: "nope"})])
    w, kafka = worker(ScriptedSink("redis", [refused]), es)
    assert await w._deliver(result)
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

    w, _ = worker(ScriptedSink("elasticsearch", [SinkRefused("elasticsearch", {ids[0]: "x"})]))
    kafka = FlakyKafka()
    w._kafka, w._sinks[0] = kafka, kafka
    assert await w._deliver(result)
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
