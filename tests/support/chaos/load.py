"""The chaos rig's load: producers of frames (some poison) at a steady rate, and WebSocket
subscribers that note every frame id they receive."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from typing import Any

from aiokafka.errors import KafkaError

from harclip.client import AsyncClient
from harclip.config import Settings
from harclip.io.topics import start_frame_producer
from harclip.messages import Frame, new_frame_id, now_ms
from tests.support.chaos.services import POISON_EVERY, RATE_PER_STREAM


@dataclass
class Producer:
    """One producer task: frames of its streams at RATE_PER_STREAM each, round robin; a frame
    counts as sent once Kafka acknowledged it (a failed send is retried, same frame id)."""

    name: str
    topic: str
    streams: list[str]
    poison: bool  # mix in poison records (upload producer)
    sent: dict[str, list[Frame]] = field(default_factory=dict)
    poison_ids: set[str] = field(default_factory=set)
    send_errors: int = 0
    acked: asyncio.Event = field(default_factory=asyncio.Event)  # set on every acknowledgement

    @property
    def count(self) -> int:
        return sum(len(v) for v in self.sent.values())

    async def run(self, s: Settings, photos: list[bytes], stop: asyncio.Event) -> None:
        # as the camera and upload producers send: renewed when a broker restart breaks it
        p = await start_frame_producer(s.kafka, role="bulk" if self.poison else "live")
        try:
            start, n = time.monotonic(), 0
            rate = RATE_PER_STREAM * len(self.streams)
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):  # the load's pace, not a wait
                    await asyncio.wait_for(
                        stop.wait(), max(0.0, start + n / rate - time.monotonic())
                    )
                if stop.is_set():
                    break
                sid = self.streams[n % len(self.streams)]
                seq = len(self.sent.setdefault(sid, []))
                at = now_ms()
                poison = self.poison and n % POISON_EVERY == POISON_EVERY - 1
                data = b"poison: not an image" if poison else photos[n % len(photos)]
                frame = Frame(new_frame_id(at), sid, seq, at, data)
                await self._send(p, frame)
                if poison:
                    self.poison_ids.add(frame.frame_id)
                else:
                    self.sent[sid].append(frame)
                self.acked.set()
                n += 1
        finally:
            await p.stop()

    async def _send(self, p: Any, frame: Frame) -> None:
        while True:
            try:
                await asyncio.wait_for(await p.send_frame(self.topic, frame), 60)
                return
            except (KafkaError, TimeoutError):
                self.send_errors += 1
                await asyncio.sleep(0.2)  # the broker is away: try the same frame again


@dataclass
class Subscriber:
    """A WebSocket subscription of one stream through the API: frame ids received, in order."""

    stream: str
    received: list[str] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    error: BaseException | None = None

    async def run(self, client: AsyncClient, subscribed: asyncio.Event) -> None:
        sub = client.subscribe(self.stream, max_reconnects=10_000)
        watch = asyncio.ensure_future(sub.subscribed.wait())
        watch.add_done_callback(lambda _: subscribed.set())
        try:
            async for m in sub:
                self.received.append(m.prediction.frame_id)
                self.changed.set()
        except Exception as e:  # kept for the check, which names it
            self.error = e
        finally:
            watch.cancel()
            await sub.close()
