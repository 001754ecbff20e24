"""FrameReader on real Kafka: a window of one stream's frames among another stream's on the same
partition, in capture order; a window without frames of the stream is `no_frames`; a long window
keeps its first and last halves."""

from __future__ import annotations

from aiokafka import AIOKafkaProducer

from harclip.messages import Frame
from stream.evidence.frames import FrameReader, Window, partition_of
from tests.support.events import PARTITIONS, T0
from tests.support.scoped import Unique


def _same_partition(sid: str) -> str:
    """Another stream id on `sid`'s partition."""
    want = partition_of(sid, PARTITIONS)
    return next(o for i in range(1000) if partition_of(o := f"other-{i}", PARTITIONS) == want)


async def test_a_window_of_one_streams_frames(unique: Unique, producer: AIOKafkaProducer) -> None:
    s = unique.settings
    topic = s.kafka.topics.frames
    other = _same_partition("cam")
    for i in range(100):  # 10 s at 10 fps, two streams interleaved, a malformed record too
        at = T0 + i * 100
        for sid in ("cam", other):
            f = Frame(f"{sid}-{i}", sid, i, at, f"{sid}:{i}".encode())
            await producer.send(topic, f.data, key=sid.encode(), headers=f.headers(),
                                timestamp_ms=at)  # fmt: skip
        if i == 50:
            await producer.send(topic, b"junk", key=b"cam", timestamp_ms=at)
    await producer.flush()
    reader = FrameReader(s.kafka, topic)
    await reader.start()
    try:
        got = await reader.read("cam", Window(T0 + 2000, T0 + 4000))
        assert got.missing is None and not got.truncated
        assert [f.seq for f in got.frames] == list(range(20, 41))
        assert {f.stream_id for f in got.frames} == {"cam"}
        long = await reader.read("cam", Window(T0, T0 + 9900, max_s=4))  # 2 s each end
        assert [f.seq for f in long.frames] == [*range(0, 21), *range(79, 100)]
        later = await reader.read("cam", Window(T0 + 60_000, T0 + 70_000))
        assert later.missing == "no_frames" and later.frames == []
        nobody = await reader.read("nobody", Window(T0, T0 + 9900))
        assert nobody.missing == "no_frames"
    finally:
        await reader.stop()
