"""`python -m producers camera|upload|synthetic ...`: send frames into Kafka."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console

from harclip.argtypes import POSITIVE, RATE, SECONDS, whole
from harclip.config import Settings, load_settings
from harclip.errors import HarclipError
from harclip.ids import STREAM_ID_RULE, source_stream_id_problem
from harclip.log import setup_logging
from harclip.messages import new_frame_id
from producers.frames import DEFAULT_SHORT_SIDE


def _stream_id(value: str) -> str:
    """An argparse type: a valid stream id (`harclip.ids`), else a usage error before sending."""
    problem = source_stream_id_problem(value)
    if problem is not None:
        raise argparse.ArgumentTypeError(f"{value!r} {problem}: a stream id is {STREAM_ID_RULE}")
    return value


def _prefix(value: str) -> str:
    """An argparse type: a prefix that makes valid stream ids PREFIX-0, PREFIX-1, ..."""
    _stream_id(f"{value}-0000000")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m producers", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    cam = sub.add_parser("camera", help="webcam, RTSP/HTTP stream or video file -> harclip.frames")
    cam.add_argument(
        "--source",
        required=True,
        help="webcam index (0), rtsp://..., http(s)://..., a video file, or 'pattern'",
    )
    cam.add_argument("--stream-id", required=True, type=_stream_id, help=STREAM_ID_RULE)
    cam.add_argument("--fps", type=RATE, default=5.0, help="frames per second sent (default 5)")
    cam.add_argument("--loop", action="store_true", help="files: start over at the end")
    cam.add_argument(
        "--no-realtime",
        action="store_true",
        help="files: read as fast as possible instead of at the file's own pace",
    )
    cam.add_argument("--max-frames", type=POSITIVE, help="stop after this many frames")

    up = sub.add_parser("upload", help="image files, folders, videos -> harclip.uploads")
    up.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    up.add_argument("--job-id", type=_stream_id, help="stream id of the job (default: upload-<id>)")
    up.add_argument("--fps", type=RATE, default=1.0, help="video frames per second (default 1)")

    syn = sub.add_parser("synthetic", help="N generated live streams (load tests)")
    syn.add_argument("--streams", type=POSITIVE, default=4)
    syn.add_argument("--fps", type=RATE, default=5.0, help="per stream")
    syn.add_argument("--duration", type=SECONDS, default=10.0, help="seconds; 0: until stopped")
    syn.add_argument("--images", type=Path, help="cycle these photos instead of a test pattern")
    syn.add_argument(
        "--prefix", default="synthetic", type=_prefix, help="stream ids are PREFIX-0..N-1"
    )

    for sp in (cam, up, syn):
        sp.add_argument("--short-side", type=whole(0, 8192), default=DEFAULT_SHORT_SIDE,
                        help=f"down-scale so the short side is this many pixels (default "
                             f"{DEFAULT_SHORT_SIDE}, the model input); 0: full size")  # fmt: skip
    return p


async def _with_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)


async def _camera(args: argparse.Namespace, s: Settings, console: Console) -> int:
    from producers.camera import CameraOptions, run_camera

    stop = asyncio.Event()
    await _with_signals(stop)
    o = CameraOptions(source=args.source, stream_id=args.stream_id, fps=args.fps, loop=args.loop,
                      short_side=args.short_side, realtime=not args.no_realtime,
                      max_frames=args.max_frames)  # fmt: skip
    console.print(f"camera {o.kind} {o.source} -> {s.kafka.topics.frames} as {o.stream_id} "
                  f"at {o.fps:g} fps")  # fmt: skip
    stats, capture = await run_camera(o, s.kafka, stop)
    console.print(f"captured {capture.frames}, sent {stats.sent}, dropped {stats.dropped} "
                  f"(slow broker), failed {stats.failed}")  # fmt: skip
    if capture.error:
        console.print(f"[red]capture error[/red]: {capture.error}")
        return 1
    return 1 if stats.failed else 0


async def _upload(args: argparse.Namespace, s: Settings, console: Console) -> int:
    from producers.upload import UploadOptions, run_upload

    job = args.job_id or f"upload-{new_frame_id().lower()[-10:]}"
    o = UploadOptions(paths=tuple(args.paths), job_id=job, fps=args.fps,
                      short_side=args.short_side, max_pixels=s.model.max_pixels)  # fmt: skip
    report = await run_upload(o, s.kafka, console=console)
    st = report.stats
    console.print(
        f"job {job}: sent {st.sent} frames, failed {len(report.errors)} files"
        + (f", skipped {report.skipped} non-media files" if report.skipped else "")
        + (f", {st.failed} frames not acknowledged" if st.failed else "")
    )
    return 1 if report.errors or st.failed else 0


async def _synthetic(args: argparse.Namespace, s: Settings, console: Console) -> int:
    from producers.synthetic import SyntheticOptions, run_synthetic

    stop = asyncio.Event()
    await _with_signals(stop)
    o = SyntheticOptions(streams=args.streams, fps=args.fps, images=args.images,
                         duration_s=args.duration or None, prefix=args.prefix,
                         short_side=args.short_side)  # fmt: skip
    stats = await run_synthetic(o, s.kafka, stop)
    console.print(
        f"sent {stats.sent}, dropped {stats.dropped} (slow broker), failed {stats.failed}"
    )
    return 1 if stats.failed else 0


_RUN = {"camera": _camera, "upload": _upload, "synthetic": _synthetic}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    console = Console(stderr=True)
    try:
        settings = load_settings()
        setup_logging(
            "harclip-producer", settings.log_format, settings.log_level, settings.log_shipping
        )
        return asyncio.run(_RUN[args.command](args, settings, console))
    except HarclipError as e:
        print(f"producers {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
