"""LiveSender drops the oldest unsent frame when the broker pushes back; uploads' helpers."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from harclip.errors import ConfigError, DecodeError
from harclip.io.kafka import RenewingProducer
from harclip.messages import Frame
from producers.sender import LiveSender
from producers.upload import expand, image_jpeg


class SlowProducer:
    """Stands in for aiokafka's producer: `send` waits until the test opens the gate."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.entered = asyncio.Event()  # a `send` is waiting at the gate
        self.sent: list[int] = []

    async def send(self, topic: str, value: bytes, *, key: bytes, headers: Any) -> Any:
        self.entered.set()
        await self.gate.wait()
        self.sent.append(int(dict(headers)["seq"]))
        fut = asyncio.get_running_loop().create_future()
        fut.set_result(None)
        return fut

    async def never(self) -> Any:
        raise AssertionError("no renewal expected")


async def test_live_sender_drops_oldest_when_the_broker_is_slow() -> None:
    producer = SlowProducer()
    renewing = RenewingProducer(producer, producer.never)  # type: ignore[arg-type]
    sender = LiveSender(renewing, "t", capacity=3)
    task = asyncio.create_task(sender.run())
    sender.offer(Frame("f0", "s", 0, 0, b"x"))
    await asyncio.wait_for(producer.entered.wait(), 10)  # seq 0 is taken and blocks in send
    for seq in range(1, 10):
        sender.offer(Frame(f"f{seq}", "s", seq, 0, b"x"))
    sender.close()
    producer.gate.set()
    stats = await task
    assert producer.sent == [0, 7, 8, 9]  # the newest 3 kept, 1..6 dropped
    assert stats.sent == 4 and stats.dropped == 6


def test_expand_walks_folders_keeps_media_and_rejects_missing(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    for name in ("b/2.jpg", "a.jpg", ".hidden.jpg", "README.md", "labels.csv", "c.MP4"):
        (tmp_path / name).write_bytes(b"x")
    skipped: list[Path] = []
    found = [p.relative_to(tmp_path).as_posix() for p in expand((tmp_path,), skipped)]
    assert found == ["a.jpg", "b/2.jpg", "c.MP4"]
    assert sorted(p.name for p in skipped) == ["README.md", "labels.csv"]
    # a file named on the command line is kept whatever it is (and fails later if not media)
    assert list(expand((tmp_path / "README.md",))) == [tmp_path / "README.md"]
    with pytest.raises(ConfigError, match="no such"):
        list(expand((tmp_path / "missing",)))


def test_image_jpeg_keeps_small_jpegs_and_refuses_bad_files(
    tmp_path: Path, sample_photos: list[Path]
) -> None:
    photo = sample_photos[0]
    out = image_jpeg(photo, 224, 10**8)
    assert out[:2] == b"\xff\xd8"
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(photo.read_bytes()[:300])
    with pytest.raises(DecodeError):
        image_jpeg(bad, 224, 10**8)
    with pytest.raises(DecodeError, match="too large"):
        image_jpeg(photo, 224, 100)
