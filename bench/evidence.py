"""Evidence build benchmark, offline (no services): the work the evidence step does per event.

    python -m bench.evidence [--fps 10] [--seconds 5 10 30 60] [--short-side 360]
                             [--codecs h264 vp8] [--data DIR] [--ratio ...] [--live ...]

The first sample video as a camera would send it (JPEG, --short-side px, --fps), cut into
events of --seconds; per codec (H.264 in MP4, the default, and VP8 in WebM) and event length:
the clip's build time (decode + encode, wall and process CPU, CPU ms per frame), build seconds
per second of event, and the bytes of the snapshot, thumbnail and clip. The last stdout line
is one JSON object.

With --ratio (needs `harclip services up`): the events app's predictions/s with evidence off,
on in a worker process (the default) and on in the app's own process, in the same run
(`evidence_ratio` = pool / off, `evidence_ratio_in_process`), and the evidence processes' CPU
per event (bench/_evidence_ratio.py). With --live: the app at the cameras' real rate
(--live-streams cameras for --live-seconds), evidence off vs on: its CPU per prediction and the
segment.start latency p99, the figures that size a deployment (bench/_evidence_live.py).
The keyframe thumbnail bytes per frame next to Elasticsearch's bytes per frame are
bench.storage's (`thumb_kb_per_frame`).
What limits it: the clip build is CPU-bound (JPEG decode + encode); in the app's process it
also takes the agents' GIL, in a worker process only a core (niced), and the services it
reads and writes (Kafka, the S3 server) work for it at normal priority. While the agents read
a backlog, builds wait for them (EVIDENCE_DEFER_LAG_S; mode `pool-eager` does not), so what
is left in a backlog run is the evidence step's own work in the app and the machine's noise.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from pathlib import Path
from typing import Any, cast

import cv2
from rich.console import Console
from rich.table import Table

from bench import harness
from harclip.messages import Frame
from stream.evidence.media import ClipCodec, ClipPreset, build_clip, nearest, thumbnail

T0 = 1_764_000_000_000


def camera_frames(video: Path, fps: float, count: int, short_side: int) -> list[Frame]:
    """`count` JPEG frames of `video` (looped), `fps` apart in capture time."""
    cap = cv2.VideoCapture(str(video))
    out: list[Frame] = []
    while len(out) < count:
        ok, img = cap.read()
        if not ok:
            cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, img = cap.read()
            if not ok:
                raise SystemExit(f"{video} does not decode")
        h, w = img.shape[:2]
        scale = short_side / min(h, w)
        img = cv2.resize(img, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
        jpeg = bytes(cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 85])[1])
        i = len(out)
        out.append(Frame(f"f{i}", "bench", i, T0 + int(i * 1000 / fps), jpeg))
    cap.release()
    return out


def measure(
    frames: list[Frame], seconds: float, codec: ClipCodec, preset: ClipPreset = "superfast"
) -> dict[str, Any]:
    wall, cpu = time.perf_counter(), time.process_time()
    clip = build_clip(frames, codec, preset)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    assert clip is not None
    snap = nearest(frames, frames[len(frames) // 2].captured_at)
    assert snap is not None
    thumb = thumbnail(snap.data, 160) or b""
    return {
        "codec": codec if codec != "h264" else f"h264/{preset}", "seconds": seconds,
        "frames": clip.frames, "build_s": round(wall, 3),
        "cpu_s": round(cpu, 3), "build_s_per_event_s": round(wall / seconds, 4),
        "snapshot_bytes": len(snap.data), "thumbnail_bytes": len(thumb),
        "clip_bytes": len(clip.data), "cpu_ms_per_frame": round(cpu * 1000 / clip.frames, 2),
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.evidence", description=__doc__)
    p.add_argument("--fps", type=float, default=10.0)
    p.add_argument("--seconds", type=float, nargs="+", default=[5.0, 10.0, 30.0, 60.0])
    p.add_argument("--short-side", type=int, default=360)
    p.add_argument("--codecs", nargs="+", choices=("h264", "vp8"), default=["h264", "vp8"])
    p.add_argument(
        "--presets",
        nargs="+",
        choices=("superfast", "ultrafast", "veryfast"),
        default=["superfast", "ultrafast"],
        help="H.264 presets (CLIP_PRESET)",
    )
    p.add_argument("--data", help="sample data folder (default HARCLIP_SAMPLE_DATA)")
    p.add_argument("--ratio", action="store_true", help="also evidence_ratio (needs services)")
    p.add_argument("--streams", type=int, default=20, help="--ratio: cameras")
    p.add_argument("--ratio-fps", type=float, default=5.0, help="--ratio: frames/s per camera")
    p.add_argument("--capture-seconds", type=float, default=60.0, help="--ratio: per camera")
    p.add_argument("--switch-s", type=float, default=10.0, help="--ratio: a segment every")
    p.add_argument("--ratio-short-side", type=int, default=240, help="--ratio: frame size, px")
    p.add_argument("--repeat", type=int, default=1, help="--ratio: runs of the modes")
    p.add_argument("--drain-s", type=float, default=300.0, help="--ratio: evidence wait, s")
    p.add_argument("--modes", nargs="+", choices=("off", "pool", "pool-eager", "in-process"),
                   default=["off", "pool", "in-process"], help="--ratio: what to run")  # fmt: skip
    p.add_argument(
        "--live",
        action="store_true",
        help="also the app at the cameras' real rate, evidence off / on",
    )
    p.add_argument("--live-streams", type=int, default=20, help="--live: cameras")
    p.add_argument("--live-seconds", type=float, default=60.0, help="--live: sending, s")
    p.add_argument("--live-repeat", type=int, default=1, help="--live: runs of the modes")
    p.add_argument("--live-profile", help="--live: the app under cProfile, stats to PATH.<mode>")
    p.add_argument("--live-drain-s", type=float, default=60.0, help="--live: evidence wait, s")
    args = p.parse_args(argv)
    data = harness.sample_data(args.data)
    video = sorted((data / "video").glob("*.mp4"))[0]
    frames = camera_frames(video, args.fps, int(max(args.seconds) * args.fps), args.short_side)
    build_clip(frames[:2], "h264")  # PyAV's import and codec set-up are not the clips' cost
    rows = [
        measure(frames[: int(sec * args.fps)], sec, codec, preset)
        for codec in args.codecs
        for preset in cast("list[ClipPreset]", args.presets if codec == "h264" else ["superfast"])
        for sec in args.seconds
    ]
    table = Table(
        title=f"evidence per event ({video.name}, {args.fps:g} fps, {args.short_side} px)"
    )
    for col in rows[0]:
        table.add_column(col)
    for r in rows:
        table.add_row(*(str(v) for v in r.values()))
    Console(stderr=True).print(table)
    out = {"bench": "evidence", "fps": args.fps, "short_side": args.short_side, "events": rows,
           "build_s_per_event_s": max(r["build_s_per_event_s"] for r in rows
                                      if r["codec"] == rows[0]["codec"]),
           "cpu_ms_per_frame": {c: max(r["cpu_ms_per_frame"] for r in rows if r["codec"] == c)
                                for c in dict.fromkeys(r["codec"] for r in rows)},
           "thumbnail_bytes": rows[0]["thumbnail_bytes"]}  # fmt: skip
    cams = [f.data for f in camera_frames(video, args.ratio_fps, 50, args.ratio_short_side)]
    if args.ratio:
        from bench._evidence_ratio import ratio

        out |= asyncio.run(ratio(args, cams))
        _print_ratio(out)
    if args.live:
        from bench._evidence_live import live

        out |= asyncio.run(live(args, cams, uuid.uuid4().hex[:7]))
        _print_live(out)
    print(json.dumps(out))
    return 0


def _print_ratio(out: dict[str, Any]) -> None:
    table = Table(title=f"events app with evidence off / on (load average {out['load_average']})")
    cols = ("mode", "predictions_s", "app_cpu_us_per_prediction", "clips", "written",
            "missing", "evidence_done_s", "deferred_s", "worker_cpu_s", "worker_cpu_s_per_event",
            "app_cpu_s_for_agents")  # fmt: skip
    for col in cols:
        table.add_column(col)
    for r in out["modes"]:
        table.add_row(*(str(r.get(c, "")) for c in cols))
    Console(stderr=True).print(table)


def _print_live(out: dict[str, Any]) -> None:
    table = Table(title="events app live, evidence off / on")
    cols = ("mode", "cameras", "predictions", "predictions_s", "app_cpu_us_per_prediction",
            "p50_event_ms", "p99_event_ms", "p99_confirm_ms", "evidence_events",
            "evidence_done", "p50_evidence_s", "p99_evidence_s", "worker_cpu_s")  # fmt: skip
    for col in cols:
        table.add_column(col)
    for r in out["live"]:
        table.add_row(*(str(r.get(c, "")) for c in cols))
    Console(stderr=True).print(table)


if __name__ == "__main__":
    raise SystemExit(main())
