"""Dead-letter records always fit one Kafka message, whatever the frame and its error."""

from __future__ import annotations

from aiokafka.record.default_records import DefaultRecordBatchBuilder
from aiokafka.structs import TopicPartition

from consumers.sinks import dlq_record
from consumers.work import LIVE, Work

LIMIT = 64 * 1024


def work(value: bytes, error: str, headers: list[tuple[str, bytes]] | None = None) -> Work:
    return Work(TopicPartition("t", 0), 7, b"cam-1", value, headers or [("seq", b"1")], LIVE,
                born_at=0.0, error=error)  # fmt: skip


def size(value: bytes, key: bytes | None, headers: list[tuple[str, bytes]]) -> int:
    return int(DefaultRecordBatchBuilder.estimate_size_in_bytes(key, value, headers))


def test_a_frame_at_the_limit_is_cut_to_fit_with_its_length_noted() -> None:
    original = b"\xff" * (LIMIT - 200)  # fitted as a frame; not with an error header added
    value, key, headers = dlq_record(work(original, "undecodable: " + "x" * 5000), LIMIT)
    assert size(value, key, headers) <= LIMIT
    named = dict(headers)
    assert named["truncated"] == str(len(original)).encode()
    assert named["error"].startswith(b"undecodable: ") and len(named["error"]) == 2000
    assert original.startswith(value) and key == b"cam-1"


def test_huge_headers_are_capped_and_small_records_are_left_alone() -> None:
    many = [(f"h{i}", b"v" * 100_000) for i in range(100)]
    value, key, headers = dlq_record(work(b"abc", "malformed: bad", many), LIMIT)
    assert value == b"abc" and dict(headers)["error"] == b"malformed: bad"
    assert all(len(v) <= 4096 for _, v in headers) and 1 < len(headers) <= 5
    assert "truncated" not in dict(headers) and size(value, key, headers) <= LIMIT
