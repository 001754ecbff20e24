"""The synthetic producer for load tests: N live streams at F frames/s each into
`harclip.frames`, from sample photos (cycled) or a generated test pattern. Frames are encoded
before the clock starts, so the rate is the producer's, not the encoder's."""

from __future__ import annotations

import asyncio
import itertools
import math
import time
from dataclasses import dataclass
from pathlib import Path

from harclip.config import KafkaSettings
from harclip.errors import ConfigError
from harclip.io.topics import start_frame_producer
from harclip.messages import Frame, new_frame_id, now_ms
from producers.frames import DEFAULT_SHORT_SIDE, encode_jpeg, test_pattern
from producers.sender import LiveSender, SendStats
from producers.upload import expand, image_jpeg

_PATTERN_FRAMES = 32  # distinct generated frames per stream


@dataclass(frozen=True)
class SyntheticOptions:
    streams: int = 4
    fps: float = 5.0  # per stream
    duration_s: float | None = 10.0  # None: until stopped
    images: Path | None = None  # a folder of sample photos; None: test pattern
    prefix: str = "synthetic"
    short_side: int = DEFAULT_SHORT_SIDE


def payloads(o: SyntheticOptions, max_pixels: int = 40_000_000) -> list[bytes]:
    """The JPEGs to cycle through: the sample photos, or generated patterns."""
    if o.images is None:
        return [encode_jpeg(test_pattern(i, label=o.prefix), o.short_side)
                for i in range(_PATTERN_FRAMES)]  # fmt: skip
    out = [image_jpeg(p, o.short_side, max_pixels) for p in expand((o.images,))
           if p.suffix.lower() in (".jpg", ".jpeg", ".png")]  # fmt: skip
    if not out:
        raise ConfigError(f"no .jpg/.png images under {o.images}")
    return out


async def run_synthetic(
    o: SyntheticOptions, s: KafkaSettings, stop: asyncio.Event, *, topic: str | None = None
) -> SendStats:
    """Send `o.streams` × `o.fps` frames/s until `o.duration_s` passed or `stop` is set."""
    if o.streams < 1 or not 0 < o.fps < math.inf or not 0 <= (o.duration_s or 0) < math.inf:
        raise ConfigError("--streams must be >= 1, --fps finite and > 0, --duration finite, >= 0")
    images = itertools.cycle(payloads(o))
    producer = await start_frame_producer(s, role="live")
    sender = LiveSender(producer, topic or s.topics.frames, capacity=4 * o.streams)
    sending = asyncio.create_task(sender.run())
    period = 1.0 / (o.fps * o.streams)
    start = time.monotonic()
    try:
        for tick in itertools.count():
            due = start + tick * period
            if o.duration_s is not None and due - start >= o.duration_s:
                break
            try:
                await asyncio.wait_for(stop.wait(), max(0.0, due - time.monotonic()))
                break
            except TimeoutError:
                pass
            stream, seq = divmod(tick, o.streams)[::-1]
            at = now_ms()
            sender.offer(Frame(new_frame_id(at), f"{o.prefix}-{stream}", seq, at, next(images)))
        sender.close()
        stats = await sending
        await producer.flush()
    finally:
        await producer.stop()
    return stats
