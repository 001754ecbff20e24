"""The upload producer: image files, folders of them and videos (sampled at `fps`) into
`harclip.uploads` as one job (stream_id = job id). Uploads wait for the broker rather than drop
anything; an unreadable file gets one error line and the rest goes on."""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from harclip.config import KafkaSettings
from harclip.errors import ConfigError, DecodeError
from harclip.io.kafka import FrameTooLarge
from harclip.io.topics import start_frame_producer
from harclip.messages import Frame, new_frame_id, now_ms
from harclip.model.imageio import check_header
from producers.frames import DEFAULT_SHORT_SIDE, encode_jpeg
from producers.sender import Acks, SendStats

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg"})
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".jpe", ".png", ".webp", ".bmp", ".gif"})


@dataclass(frozen=True)
class UploadOptions:
    paths: tuple[Path, ...]
    job_id: str
    fps: float = 1.0  # frames per second of video sampled
    short_side: int = DEFAULT_SHORT_SIDE  # pixels; 0: send full size
    max_pixels: int = 40_000_000  # refuse larger images (decompression bombs)


@dataclass
class UploadReport:
    stats: SendStats = field(default_factory=SendStats)
    errors: list[tuple[Path, str]] = field(default_factory=list)  # (file, reason)
    frame_ids: list[str] = field(default_factory=list)
    skipped: int = 0  # files inside folders that are not images or videos


def is_media(path: Path) -> bool:
    """Whether `path`'s suffix is an image or video format the upload reads."""
    return path.suffix.lower() in IMAGE_SUFFIXES | VIDEO_SUFFIXES


def expand(paths: tuple[Path, ...], skipped: list[Path] | None = None) -> Iterator[Path]:
    """Files as given; folders walked recursively in sorted order, keeping images and videos
    (hidden files and other files - a README, a labels.csv - are skipped, and appended to
    `skipped`). A file named directly is kept whatever it is (it fails if it is not media).
    `ConfigError` for a path that does not exist."""
    for p in paths:
        if p.is_dir():
            for f in sorted(p.rglob("*")):
                if not f.is_file() or f.name.startswith("."):
                    continue
                if is_media(f):
                    yield f
                elif skipped is not None:
                    skipped.append(f)
        elif p.is_file():
            yield p
        else:
            raise ConfigError(f"no such file or folder: {p}")


def image_jpeg(path: Path, short_side: int, max_pixels: int) -> bytes:
    """The bytes to send for one image file: as-is if it is a JPEG no larger than needed,
    else decoded, down-scaled and re-encoded. `DecodeError` names why it is unusable."""
    data = path.read_bytes()
    header = check_header(data, max_pixels=max_pixels)
    short = min(header.width, header.height)
    if header.format == "jpeg" and (short_side <= 0 or short <= short_side * 3 // 2):
        return data
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise DecodeError("the decoder failed")
    return encode_jpeg(bgr, short_side)


def video_frames(path: Path, fps: float, short_side: int) -> Iterator[bytes]:
    """JPEGs of `path` sampled at `fps` by the video's own timestamps (as fast as decoding
    goes); `DecodeError` if OpenCV cannot open it."""
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise DecodeError("OpenCV cannot open it as a video")
    try:
        next_ms, period_ms = 0.0, 1000.0 / fps
        while cap.grab():
            t_ms = cap.get(cv2.CAP_PROP_POS_MSEC)
            if t_ms + 1e-6 < next_ms:
                continue
            ok, bgr = cap.retrieve()
            if not ok or bgr is None:
                break
            next_ms += period_ms
            yield encode_jpeg(bgr, short_side)
    finally:
        cap.release()


async def run_upload(
    o: UploadOptions, s: KafkaSettings, *, console: Console | None = None, topic: str | None = None
) -> UploadReport:
    """Send every file (and sampled video frame) of `o.paths`; returns what was sent and what
    failed. Waits for every acknowledgement before returning."""
    if not 0 < o.fps < math.inf:
        raise ConfigError(f"--fps must be a finite number > 0, got {o.fps}")
    skipped: list[Path] = []
    files = list(expand(o.paths, skipped))
    console = console or Console(stderr=True)
    report = UploadReport(skipped=len(skipped))
    if skipped:
        console.print(f"skipping {len(skipped)} files that are not images or videos "
                      f"(e.g. {skipped[0]})")  # fmt: skip
    acks = Acks(report.stats)
    topic = topic or s.topics.uploads
    producer = await start_frame_producer(s, role="bulk")
    seq = 0
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(), TextColumn("{task.fields[name]}"))  # fmt: skip
    try:
        with Progress(*columns, console=console, transient=False) as progress:
            task = progress.add_task(f"upload {o.job_id}", total=len(files), name="")
            for path in files:
                progress.update(task, name=path.name)
                try:
                    for data in _payloads(path, o):
                        at = now_ms()
                        frame = Frame(new_frame_id(at), o.job_id, seq, at, data)
                        await acks.add(await producer.send_frame(topic, frame))
                        report.frame_ids.append(frame.frame_id)
                        seq += 1
                except (DecodeError, FrameTooLarge, OSError) as e:
                    report.errors.append((path, str(e)))
                    progress.console.print(f"[red]error[/red] {path}: {e}")
                progress.advance(task)
            await acks.drain()
        await producer.flush()
    finally:
        await producer.stop()
    return report


def _payloads(path: Path, o: UploadOptions) -> Iterator[bytes]:
    if path.suffix.lower() in VIDEO_SUFFIXES:
        yield from video_frames(path, o.fps, o.short_side)
    else:
        yield image_jpeg(path, o.short_side, o.max_pixels)
