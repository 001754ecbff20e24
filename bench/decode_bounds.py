"""Worst cases of decoding one frame at the default limits: the costliest file of each format that
the checks still let through (`HARCLIP_MODEL__MAX_PIXELS` 40 M pixels, at most 100 pixels per
byte above 4 M, at most 40 JPEG scans, a Kafka message of at most 4 MiB), decoded to 224×224 by
`harclip.model.preprocess.decode_image`, each in a fresh process: seconds and peak memory.

    python -m bench.decode_bounds [--quick]

Prints a table, then one JSON line: {"<case>": {"seconds": s, "peak_mb": MB, "bytes": n}, ...,
"worst_seconds": s, "worst_peak_mb": MB}.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Callable

import cv2
import numpy as np
from rich.console import Console
from rich.table import Table

from harclip.model.imageio import MAX_JPEG_SCANS

MESSAGE_BYTES = 4 * 1024 * 1024  # HARCLIP_KAFKA__MAX_MESSAGE_BYTES
W, H = 7296, 5472  # 39.9 M pixels, just under the default limit

# Peak memory from VmHWM (this process' own high-water mark; ru_maxrss would carry the parent's
# across fork + exec).
_MEASURE = """
import sys, time
import harclip
from harclip.model.preprocess import decode_image
def hwm_kb():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
data = sys.stdin.buffer.read()
base = hwm_kb()
start = time.perf_counter()
decode_image(data, 224, max_pixels=40_000_000)
seconds = time.perf_counter() - start
print(seconds, (hwm_kb() - base) / 1024)
"""


def _texture(h: int, w: int, channels: int, seed: int = 0) -> np.ndarray:
    """A blocky texture: compresses enough to fit a message, not so well that the ratio trips."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (h // 16 + 1, w // 16 + 1, channels), dtype=np.uint8)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)


def jpeg_baseline() -> bytes:
    return cv2.imencode(".jpg", _texture(H, W, 3), [cv2.IMWRITE_JPEG_QUALITY, 60])[1].tobytes()


def jpeg_progressive() -> bytes:
    """A progressive 40 MP JPEG padded to the scan limit by repeating its refinement scans."""
    params = [cv2.IMWRITE_JPEG_QUALITY, 60, cv2.IMWRITE_JPEG_PROGRESSIVE, 1]
    data = cv2.imencode(".jpg", _texture(H, W, 3), params)[1].tobytes()
    starts = [i for i in range(len(data) - 1) if data[i] == 0xFF and data[i + 1] == 0xDA]
    last = data[starts[-1] : data.rindex(b"\xff\xd9")]
    extra = MAX_JPEG_SCANS - len(starts)
    return data[: data.rindex(b"\xff\xd9")] + last * max(0, extra) + b"\xff\xd9"


def png_rgba16() -> bytes:
    img = _texture(H, W, 4).astype(np.uint16) * 257
    return cv2.imencode(".png", img, [cv2.IMWRITE_PNG_COMPRESSION, 9])[1].tobytes()


def png_rgb() -> bytes:
    return cv2.imencode(".png", _texture(H, W, 3), [cv2.IMWRITE_PNG_COMPRESSION, 9])[1].tobytes()


def webp_lossless() -> bytes:
    h, w = 2500, 16000  # WebP's sides stop at 16383
    return cv2.imencode(".webp", _texture(h, w, 4), [cv2.IMWRITE_WEBP_QUALITY, 101])[1].tobytes()


def bmp_8bit() -> bytes:
    img = _texture(1024, MESSAGE_BYTES // 1024 - 64, 1)  # gray: one byte per pixel
    return cv2.imencode(".bmp", img)[1].tobytes()


CASES: dict[str, Callable[[], bytes]] = {
    "jpeg_baseline_40mp": jpeg_baseline,
    f"jpeg_progressive_40mp_{MAX_JPEG_SCANS}_scans": jpeg_progressive,
    "png_rgba16_40mp": png_rgba16,
    "png_rgb_40mp": png_rgb,
    "webp_lossless_alpha_40mp": webp_lossless,
    "bmp_gray_4mib": bmp_8bit,
}


def measure(data: bytes) -> tuple[float, float]:
    proc = subprocess.run(
        [sys.executable, "-c", _MEASURE], input=data, capture_output=True, timeout=300
    )
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr.decode()[-2000:])
    seconds, peak = proc.stdout.split()
    return float(seconds), float(peak)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="only the two JPEG cases")
    args = p.parse_args(argv)
    console = Console(stderr=True)
    cases = dict(list(CASES.items())[:2]) if args.quick else CASES
    table = Table(title="decode_image worst cases at the default limits (one frame, 224 px)")
    for col in ("case", "bytes", "fits a message", "seconds", "peak MB"):
        table.add_column(col, justify="right")
    out: dict[str, object] = {}
    for i, (name, make) in enumerate(cases.items(), 1):
        console.print(f"[{i}/{len(cases)}] {name}: making the file ...")
        data = make()
        seconds, peak = measure(data)
        fits = len(data) <= MESSAGE_BYTES
        out[name] = {"seconds": round(seconds, 3), "peak_mb": round(peak, 1), "bytes": len(data)}
        table.add_row(name, f"{len(data):,}", "yes" if fits else "no (API only)",
                      f"{seconds:.3f}", f"{peak:.0f}")  # fmt: skip
    Console().print(table)
    runs = [v for v in out.values() if isinstance(v, dict)]
    out["worst_seconds"] = max(r["seconds"] for r in runs)
    out["worst_peak_mb"] = max(r["peak_mb"] for r in runs)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
