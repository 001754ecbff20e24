"""Evidence build benchmark, offline (no services): the work the evidence step does per event.

    python -m bench.evidence [--fps 10] [--seconds 5 10 30 60] [--short-side 360] [--data DIR]

The first sample video as a camera would send it (JPEG, --short-side px, --fps), cut into
events of --seconds; per event length: the clip's build time (decode + VP8 encode, wall and
process CPU), build seconds per second of event, and the bytes of the snapshot, thumbnail and
clip. The last stdout line is one JSON object.

Not measured here (left undone): the events app's predictions/s with evidence on vs off
(`evidence_ratio`), which needs the services and the app; the object store's write time.
What limits it: the clip build is CPU-bound (JPEG decode + libvpx realtime encode, one thread
per event; EVIDENCE_CONCURRENCY events at once).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import cv2
from rich.console import Console
from rich.table import Table

from bench import harness
from harclip.messages import Frame
from stream.evidence.media import build_clip, nearest, thumbnail

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


def measure(frames: list[Frame], seconds: float) -> dict[str, Any]:
    wall, cpu = time.perf_counter(), time.process_time()
    clip = build_clip(frames)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    assert clip is not None
    snap = nearest(frames, frames[len(frames) // 2].captured_at)
    assert snap is not None
    thumb = thumbnail(snap.data, 160) or b""
    return {
        "seconds": seconds, "frames": clip.frames, "build_s": round(wall, 3),
        "cpu_s": round(cpu, 3), "build_s_per_event_s": round(wall / seconds, 4),
        "snapshot_bytes": len(snap.data), "thumbnail_bytes": len(thumb),
        "clip_bytes": len(clip.data),
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.evidence", description=__doc__)
    p.add_argument("--fps", type=float, default=10.0)
    p.add_argument("--seconds", type=float, nargs="+", default=[5.0, 10.0, 30.0, 60.0])
    p.add_argument("--short-side", type=int, default=360)
    p.add_argument("--data", help="sample data folder (default HARCLIP_SAMPLE_DATA)")
    args = p.parse_args(argv)
    data = harness.sample_data(args.data)
    video = sorted((data / "video").glob("*.mp4"))[0]
    frames = camera_frames(video, args.fps, int(max(args.seconds) * args.fps), args.short_side)
    rows = [measure(frames[: int(sec * args.fps)], sec) for sec in args.seconds]
    table = Table(
        title=f"evidence per event ({video.name}, {args.fps:g} fps, {args.short_side} px)"
    )
    for col in rows[0]:
        table.add_column(col)
    for r in rows:
        table.add_row(*(str(v) for v in r.values()))
    Console(stderr=True).print(table)
    out = {"bench": "evidence", "fps": args.fps, "short_side": args.short_side, "events": rows,
           "build_s_per_event_s": max(r["build_s_per_event_s"] for r in rows),
           "thumbnail_bytes": rows[0]["thumbnail_bytes"]}  # fmt: skip
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
