"""The camera producer: an OpenCV capture (webcam index, RTSP/HTTP URL or video file) read in a
thread, sampled to a target rate, down-scaled, JPEG-encoded and sent to `harclip.frames`.

Network sources and failed reads reconnect with exponential backoff; a video file plays in real
time (as a camera would deliver it) and ends, or starts over with `loop`.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from harclip.config import KafkaSettings
from harclip.errors import ConfigError
from harclip.io.topics import start_frame_producer
from harclip.messages import Frame, new_frame_id, now_ms
from harclip.retry import Attempts, Backoff
from producers.frames import DEFAULT_SHORT_SIDE, encode_jpeg, test_pattern
from producers.sender import LiveSender, SendStats

log = logging.getLogger(__name__)

_RECONNECT = Backoff(0.5, 10.0)  # reconnect: first and longest pause, seconds
TEST_PATTERN = "pattern"  # a `source` that generates frames instead of capturing


@dataclass(frozen=True)
class CameraOptions:
    source: str  # "0" (webcam index), rtsp://..., http(s)://..., a file path, or "pattern"
    stream_id: str
    fps: float = 5.0  # frames per second sent
    loop: bool = False  # files: start over at the end
    short_side: int = DEFAULT_SHORT_SIDE  # pixels; 0: send full size
    realtime: bool = True  # files: pace at the file's own rate (like a camera)
    max_frames: int | None = None  # stop after this many frames (tests, demos)

    @property
    def kind(self) -> str:
        if self.source == TEST_PATTERN:
            return "pattern"
        if self.source.isdigit():
            return "webcam"
        if "://" in self.source:
            return "network"
        return "file"


def check_options(o: CameraOptions) -> None:
    """`ConfigError` for options that cannot work (before anything is opened)."""
    if not 0 < o.fps < math.inf:
        raise ConfigError(f"--fps must be a finite number > 0, got {o.fps}")
    if o.kind == "file" and not Path(o.source).is_file():
        raise ConfigError(f"video file not found: {o.source}")
    if o.kind == "network" and o.source.split("://")[0] not in ("rtsp", "rtsps", "http", "https"):
        raise ConfigError(f"unsupported source URL {o.source!r}: use rtsp://, http:// or https://")


class Capture:
    """Reads frames in a thread and hands sampled, encoded Frames to `emit`."""

    def __init__(self, o: CameraOptions, emit: Callable[[Frame], None]) -> None:
        self._o = o
        self._emit = emit
        self._stop = threading.Event()
        self.frames = 0
        self.error: str | None = None

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> None:
        """Capture until stopped, the file ends (without loop) or `max_frames` were emitted."""
        try:
            if self._o.kind == "pattern":
                self._run_pattern()
            else:
                self._run_capture()
        except Exception as e:  # reported by the caller, never a silent thread death
            self.error = f"{type(e).__name__}: {e}"
            log.exception("capture failed")

    def _done(self) -> bool:
        return self._stop.is_set() or (
            self._o.max_frames is not None and self.frames >= self._o.max_frames
        )

    def _send(self, bgr: np.ndarray, captured_at: int) -> None:
        frame = Frame(
            frame_id=new_frame_id(captured_at), stream_id=self._o.stream_id, seq=self.frames,
            captured_at=captured_at, data=encode_jpeg(bgr, self._o.short_side),
        )  # fmt: skip
        self.frames += 1
        self._emit(frame)

    def _run_pattern(self) -> None:
        period = 1.0 / self._o.fps
        start = time.monotonic()
        while not self._done():
            self._send(test_pattern(self.frames, label=self._o.stream_id), now_ms())
            self._stop.wait(max(0.0, start + self.frames * period - time.monotonic()))

    def _open(self) -> cv2.VideoCapture:
        src: int | str = int(self._o.source) if self._o.kind == "webcam" else self._o.source
        return cv2.VideoCapture(src)

    def _run_capture(self) -> None:
        attempts = Attempts(_RECONNECT)
        while not self._done():
            cap = self._open()
            if not cap.isOpened():
                if self._o.kind == "file":
                    raise ConfigError(f"OpenCV cannot open video {self._o.source}")
                log.warning("cannot open %s; retrying in %.1f s", self._o.source, attempts.pause_s)
                self._back_off(attempts)
                continue
            try:
                ended = self._read(cap)
            finally:
                cap.release()
            if ended and self._o.kind == "file" and not self._o.loop:
                return
            if ended and self._o.kind != "file":
                log.warning("read from %s failed; reconnecting in %.1f s", self._o.source,
                            attempts.pause_s)  # fmt: skip
                self._back_off(attempts)
            else:
                attempts.succeeded()

    def _back_off(self, attempts: Attempts) -> None:
        """Count a failure and wait its pause (less if stopped)."""
        self._stop.wait(attempts.failed() or 0.0)

    def _read(self, cap: cv2.VideoCapture) -> bool:
        """Read and sample until stopped (False) or the source ends / fails (True)."""
        period_ms = 1000.0 / self._o.fps
        is_file = self._o.kind == "file"
        start = time.monotonic()
        next_ms = 0.0  # source time (files) or wall time since start (live) of the next frame
        while not self._done():
            if not cap.grab():
                return True
            captured_at = now_ms()
            t_ms = cap.get(cv2.CAP_PROP_POS_MSEC) if is_file else (time.monotonic() - start) * 1000
            if t_ms + 1e-6 < next_ms:
                continue  # sampled out: grabbed but never decoded
            ok, bgr = cap.retrieve()
            if not ok or bgr is None:
                return True
            next_ms = max(next_ms + period_ms, t_ms)  # a slow source does not make a burst
            if is_file and self._o.realtime:  # a file plays at its own pace, as a camera would
                self._stop.wait(max(0.0, start + t_ms / 1000 - time.monotonic()))
                captured_at = now_ms()
            self._send(bgr, captured_at)
        return False


async def run_camera(
    o: CameraOptions, s: KafkaSettings, stop: asyncio.Event, *, topic: str | None = None
) -> tuple[SendStats, Capture]:
    """Capture and send until `stop` is set or the source ends; flushes before returning."""
    check_options(o)
    loop = asyncio.get_running_loop()
    producer = await start_frame_producer(s, role="live")
    sender = LiveSender(producer, topic or s.topics.frames)

    def emit(frame: Frame) -> None:  # capture thread -> event loop
        loop.call_soon_threadsafe(sender.offer, frame)

    capture = Capture(o, emit)
    thread = threading.Thread(target=capture.run, name="capture", daemon=True)
    sending = asyncio.create_task(sender.run())
    thread.start()
    try:
        finished = asyncio.create_task(asyncio.to_thread(thread.join))
        stopped = asyncio.create_task(stop.wait())
        await asyncio.wait({finished, stopped}, return_when=asyncio.FIRST_COMPLETED)
        capture.stop()
        await finished
        stopped.cancel()
        await asyncio.sleep(0)  # let the last call_soon_threadsafe offers run
        sender.close()
        stats = await sending
        await producer.flush()
    finally:
        capture.stop()
        await producer.stop()
    return stats, capture
