"""Poison at volume: 10,000 malformed records of every kind the worker dead-letters, mixed into a
normal stream of good frames, against a worker process. Every poison record reaches the DLQ once,
with the reason its kind gets; every good frame is predicted; the worker's RSS stays bounded.

In `make chaos` (on its private services) rather than `make test`: it takes over three minutes
on the 2-core machine (docs/chaos.md)."""

from __future__ import annotations

import asyncio
import random
import time
import zlib
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from harclip.messages import FRAME_SCHEMA, Frame, Headers, Prediction, new_frame_id, now_ms
from harclip.services.child import Child
from tests.support.kafka import header, read_topic
from tests.support.processes import ROOT, env_of, free_port
from tests.support.scoped import Unique
from tests.support.worker import PARTITIONS, producer, worker_settings
from tests.unit.harclip.model.test_bounds import _bmp, _gif, _png, _webp, ff00_jpeg

pytestmark = pytest.mark.timeout(900)
POISON = 10_000
GOOD = 1_000
RSS_BOUND_MIB = 256  # peak over the baseline the worker had after its warm-up frames
TIMEOUT_S = 600.0
BIG = "oversize record (~1 MB)"
BIG_COUNT = 20  # 20 MB of them; the other kinds share the rest of the 10,000


def _headers(fid: str, **over: bytes | None) -> Headers:
    """A good frame's headers with some replaced (`None`: left out)."""
    h: dict[str, bytes | None] = {
        "frame_id": fid.encode(), "stream_id": b"cam-p", "seq": b"1",
        "captured_at": str(now_ms()).encode(), "content_type": b"image/jpeg",
        "schema": FRAME_SCHEMA.encode(),
    }  # fmt: skip
    h.update(over)
    return [(k, v) for k, v in h.items() if v is not None]


def _jpeg(img: np.ndarray, progressive: bool = False) -> bytes:
    params = [cv2.IMWRITE_JPEG_PROGRESSIVE, 1] if progressive else []
    return bytes(cv2.imencode(".jpg", img, params)[1].tobytes())


def _many_scans(jpeg: bytes) -> bytes:
    first = jpeg.index(b"\xff\xda")
    scan = jpeg[first : jpeg.index(b"\xff\xd9")]
    return jpeg[:first] + scan * 60 + b"\xff\xd9"


def _corrupt_png(img: np.ndarray) -> bytes:
    data = bytearray(cv2.imencode(".png", img)[1].tobytes())
    idat = data.index(b"IDAT")
    for i in range(idat + 8, min(len(data) - 16, idat + 200)):
        data[i] ^= 0x5A  # scrambled deflate stream, CRC left stale
    return bytes(data)


# kind -> (value, headers given a frame id) and the start of the `error` it must get
Kind = tuple[Callable[[str], tuple[bytes, Headers]], str]


def poison_kinds(photo: bytes) -> dict[str, Kind]:
    img = cv2.imdecode(np.frombuffer(photo, np.uint8), cv2.IMREAD_COLOR)
    small = cv2.resize(img, (64, 64))
    prog = _jpeg(small, progressive=True)
    half = photo[: len(photo) // 2]
    big = b"\xff\xd8\xff\xe0" + bytes(900_000)  # ~1 MB that is no JPEG
    bomb = _png(6000, 6000, 2, zlib.compress(b"\x00" * 200_000))  # 36 Mpx in a few hundred bytes
    huge = _png(50_000, 50_000, 2, zlib.compress(b"\x00" * 1024))  # over max_pixels
    corrupt_png = _corrupt_png(small)
    junk = random.Random(7).randbytes(3000)

    def good_headers(**over: bytes | None) -> Callable[[str], tuple[bytes, Headers]]:
        return lambda fid: (photo, _headers(fid, **over))

    def body(value: bytes, **over: bytes | None) -> Callable[[str], tuple[bytes, Headers]]:
        return lambda fid: (value, _headers(fid, **over))

    return {
        "no headers": (lambda fid: (photo, []), "malformed: missing header 'schema'"),
        "wrong schema": (good_headers(schema=b"harclip.frame/0"), "malformed: unsupported schema"),
        "no frame_id": (good_headers(frame_id=None), "malformed: missing header 'frame_id'"),
        "seq not a number": (good_headers(seq=b"one"), "malformed: headers 'seq'"),
        "negative captured_at": (good_headers(captured_at=b"-5"), "malformed: headers 'seq'"),
        "header not UTF-8": (good_headers(stream_id=b"\xff\xfe"), "malformed: header 'stream_id'"),
        "stream id with '/'": (good_headers(stream_id=b"a/b"), "malformed: "),
        "stream id of 200 chars": (good_headers(stream_id=b"s" * 200), "malformed: "),
        "empty body": (body(b""), "malformed: empty frame"),
        "text as text/plain": (
            body(b"hello, world\n" * 20, content_type=b"text/plain"),
            "undecodable: ",
        ),
        "random bytes": (body(junk), "undecodable: "),
        "truncated JPEG": (body(half), "undecodable: truncated JPEG"),
        "corrupt JPEG header (FF 00)": (body(ff00_jpeg()), "undecodable: corrupt JPEG header"),
        "JPEG with 60 scans": (body(_many_scans(prog)), "undecodable: JPEG with"),
        "corrupt PNG data": (
            body(corrupt_png, content_type=b"image/png"),
            "undecodable: corrupt PNG",
        ),
        "PNG over max_pixels": (body(huge, content_type=b"image/png"), "undecodable: "),
        "PNG decompression bomb": (body(bomb, content_type=b"image/png"), "undecodable: "),
        "GIF bomb": (body(_gif(6000, 6000), content_type=b"image/gif"), "undecodable: "),
        "BMP bomb": (body(_bmp(6000, 6000), content_type=b"image/bmp"), "undecodable: "),
        "WebP bomb": (body(_webp(6000, 6000), content_type=b"image/webp"), "undecodable: "),
        BIG: (body(big), "undecodable: "),
    }


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


async def counters(port: int) -> dict[str, float]:
    async with httpx.AsyncClient() as http:
        text = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
    out: dict[str, float] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name in ("harclip_frames_predicted_total", "harclip_frames_failed_total"):
                out[s.name] = out.get(s.name, 0.0) + s.value
    return out


async def until_counted(port: int, predicted: int, failed: int, proc: Child
                        ) -> None:  # fmt: skip
    async with asyncio.timeout(TIMEOUT_S):
        while True:
            assert proc.returncode is None, "the worker exited"
            c = await counters(port)
            if (c.get("harclip_frames_predicted_total", 0) >= predicted
                    and c.get("harclip_frames_failed_total", 0) >= failed):  # fmt: skip
                return
            await asyncio.sleep(0.2)  # the worker's counters are polled over HTTP


async def test_ten_thousand_poison_records_in_a_good_stream(
    unique: Unique, tiny_bundle: Path, sample_photos: list[Path]
) -> None:
    s = worker_settings(unique.settings, tiny_bundle, max_age_ms=600_000)
    t = s.kafka.topics
    photos = [p.read_bytes() for p in sample_photos[::6]]
    kinds = poison_kinds(photos[0])
    names = sorted(kinds)
    small = [n for n in names if n != BIG]
    rng = random.Random(12)
    plan = ["good"] * GOOD + [BIG] * BIG_COUNT
    plan += [small[i % len(small)] for i in range(POISON - BIG_COUNT)]
    rng.shuffle(plan)
    port = free_port()
    # its log (10,000 dead-letter warnings) is kept by the runner, not echoed
    proc = Child.python("consumers", "--bundle", str(tiny_bundle), "--partitions",
                        str(PARTITIONS), "--metrics-port", str(port), cwd=ROOT,
                        env=env_of(s))  # fmt: skip
    peak = 0
    sampling = True

    async def sample() -> None:
        nonlocal peak
        while sampling:
            peak = max(peak, rss_bytes(proc.pid))
            await asyncio.sleep(0.25)  # an RSS sample, not a wait

    sampler: asyncio.Task[None] | None = None
    try:
        async with producer(s) as p:
            warm = [Frame(new_frame_id(), "warm", i, now_ms(), photos[i % len(photos)])
                    for i in range(50)]  # fmt: skip
            for f in warm:
                await p.send(t.uploads, f.data, key=b"warm", headers=f.headers())
            await p.flush()
            async with asyncio.timeout(120):  # up once /metrics answers
                while True:
                    assert proc.returncode is None, "the worker exited at start"
                    try:
                        await counters(port)
                        break
                    except httpx.HTTPError:
                        await asyncio.sleep(0.5)
            await until_counted(port, len(warm), 0, proc)
            baseline = rss_bytes(proc.pid)
            sampler = asyncio.create_task(sample())

            good: set[str] = set()
            poison: dict[str, str] = {}  # test id -> kind
            t0 = time.monotonic()
            for n, kind in enumerate(plan):
                fid = new_frame_id()
                sid = f"cam-{n % 4}"
                if kind == "good":
                    f = Frame(fid, sid, n, now_ms(), photos[n % len(photos)])
                    value, headers = f.data, f.headers()
                    good.add(fid)
                else:
                    value, headers = kinds[kind][0](fid)
                    poison[str(n)] = kind
                headers = [("test-id", str(n).encode()), *headers]
                await p.send(t.uploads, value, key=sid.encode(), headers=headers)
            await p.flush()
            await until_counted(port, len(warm) + GOOD, POISON, proc)
            elapsed = time.monotonic() - t0
    finally:
        sampling = False
        if sampler is not None:
            await sampler
        await proc.astop(60.0)

    dlq = await read_topic(s, t.dlq, until=lambda rs: len(rs) >= POISON, timeout_s=120)
    by_id = Counter(header(r, "test-id") for r in dlq)
    assert set(by_id) == set(poison) and max(by_id.values()) == 1  # each once, nothing else
    wrong = Counter[str]()
    for r in dlq:
        kind = poison[header(r, "test-id") or ""]
        error = header(r, "error") or ""
        if not error.startswith(kinds[kind][1]):
            wrong[f"{kind}: {error[:120]}"] += 1
    assert not wrong, wrong.most_common(10)

    preds = await read_topic(s, t.predictions, until=lambda rs: len(rs) >= GOOD + 50)
    predicted = {Prediction.from_json(r.value).frame_id for r in preds}
    assert good <= predicted
    growth_mib = (peak - baseline) / 2**20
    print(f"\npoison at volume: {POISON} poison + {GOOD} good records in {elapsed:.1f} s "
          f"({(POISON + GOOD) / elapsed:.0f} records/s); worker RSS {baseline / 2**20:.0f} MiB "
          f"after warm-up, peak {peak / 2**20:.0f} MiB (+{growth_mib:.0f} MiB); "
          f"{len(names)} kinds")  # fmt: skip
    assert growth_mib < RSS_BOUND_MIB
