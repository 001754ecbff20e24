"""Events-app benchmark on the real local services (`harclip services up`).

    python -m bench.stream [--streams 50] [--backlog 20000] [--latency-seconds 20]
                           [--min-segment-ms 600] [--store rocksdb] [--profile app.prof]

One `python -m stream` worker (its own topics, group, index and Redis keys):
  throughput  a backlog of predictions for N streams (each switching action every 5 s of
              capture time, with single-frame flicker) is on harclip.predictions before the app
              starts; predictions/s from the first to the last one applied (/metrics).
  latency     live predictions at half that rate (capture time = now), each stream switching
              every 3 s; for every segment.start: its arrival on harclip.events minus the
              arrival of the segment's first prediction on harclip.predictions (both the
              broker's append time: the bench's topics use LogAppendTime)
              (`p99_event_ms`, includes the hold the rules require), and minus the arrival of the
              prediction that confirmed it (`p99_confirm_ms`: the app's own delay).
--profile runs the app under cProfile and prints its top functions.
The last stdout line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from aiokafka import AIOKafkaConsumer
from rich.console import Console

from bench import harness
from bench._stream_report import print_report, quantile_ms
from harclip.config import Settings, load_settings
from harclip.io.kafka import make_producer
from harclip.io.topics import ensure_topics
from harclip.messages import Event, Prediction, now_ms
from harclip.services.child import Child

console = Console(stderr=True)
PARTITIONS = 3
LABELS = ("running", "fighting", "sitting", "dancing", "walking", "cycling")
_PORT = re.compile(r"health and metrics on http://[\d.]+:(\d+)/")


def _prediction(sid: str, seq: int, at: int, label: str) -> bytes:
    others = [lb for lb in LABELS if lb != label][:4]
    top = [(label, 0.7), *((lb, 0.3 / (2 + i)) for i, lb in enumerate(others))]
    return Prediction.model_validate({
        "frame_id": f"{sid}-{seq:08d}", "stream_id": sid, "seq": seq, "captured_at": at,
        "inferred_at": at, "label": label, "score": 0.7,
        "top_k": [{"label": lb, "score": sc} for lb, sc in top],
        "model": {"name": "bench", "version": "1", "head_version": 1},
        "latency_ms": {"queue": 1.0, "infer": 1.0, "total": 2.0},
    }).to_json()  # fmt: skip


def _label(stream: int, seq: int, frames_per_phase: int) -> str:
    label = LABELS[(stream + seq // frames_per_phase) % len(LABELS)]
    if seq % 37 == 11:  # single-frame flicker
        label = LABELS[(stream + seq // frames_per_phase + 1) % len(LABELS)]
    return label


def scoped(base: Settings, suffix: str, store_: str, min_segment_ms: int,
           gc_freeze: bool | None = None) -> Settings:  # fmt: skip
    """`base` for the app with names of its own (bench-<suffix>)."""
    k = base.kafka
    stream = base.stream.model_copy(
        update={
            "app_id": f"bench-stream-{suffix}",
            "datadir": Path(f"/tmp/harclip-bench-stream-{suffix}"),
            "port": 0,
            "store": store_,
            "min_segment_ms": min_segment_ms,
            "idle_timeout_s": 600.0,
            "gc_freeze": base.stream.gc_freeze if gc_freeze is None else gc_freeze,
        }
    )
    return base.model_copy(update={
        "kafka": k.model_copy(update={"topics": k.topics.with_prefix(f"bench-{suffix}."),
                                      "partitions": PARTITIONS}),
        "redis": base.redis.model_copy(update={"key_prefix": f"bench-{suffix}"}),
        "elasticsearch": base.elasticsearch.model_copy(
            update={"events_index": f"bench-events-{suffix}"}),
        "stream": stream,
    })  # fmt: skip


class AppProc:
    """The events app (`python -m stream`) under test, its log in a file."""

    def __init__(self, settings: Settings, profile: Path | None, log: Path) -> None:
        self.settings, self.profile, self.log = settings, profile, log
        self.child: Child | None = None
        self.port = 0

    async def start(self) -> None:
        self.child, self.port = await asyncio.to_thread(
            harness.start_events, self.settings, log=self.log, profile=self.profile
        )

    def cpu_s(self) -> float:
        """CPU seconds the app process has used (user + system)."""
        assert self.child is not None
        fields = Path(f"/proc/{self.child.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    async def applied(self, client: httpx.AsyncClient) -> float:
        text = (await client.get(f"http://127.0.0.1:{self.port}/metrics")).text
        m = re.search(r"^harclip_stream_predictions_total ([\d.e+]+)$", text, re.M)
        return float(m.group(1)) if m else 0.0

    async def lag_buckets(self) -> dict[float, float]:
        """The app's processing-lag histogram (record timestamp -> applied): le -> count."""
        async with httpx.AsyncClient(timeout=10) as c:
            text = (await c.get(f"http://127.0.0.1:{self.port}/metrics")).text
        pat = r'^harclip_stream_processing_lag_seconds_bucket\{le="([^"]+)"\} ([\d.e+]+)$'
        return {float(le): float(n) for le, n in re.findall(pat, text, re.M)}

    async def gc_pauses(self) -> dict[str, tuple[float, float]]:
        """The app's garbage collections so far: generation -> (count, seconds in total)."""
        async with httpx.AsyncClient(timeout=10) as c:
            text = (await c.get(f"http://127.0.0.1:{self.port}/metrics")).text
        pat = r'^harclip_stream_gc_pause_seconds_(count|sum)\{generation="(\d)"\} ([\d.e+-]+)$'
        out: dict[str, list[float]] = {}
        for kind, gen, v in re.findall(pat, text, re.M):
            out.setdefault(gen, [0.0, 0.0])[kind == "sum"] = float(v)
        return {g: (c, t) for g, (c, t) in out.items()}

    async def stop(self) -> None:
        if self.child is not None:
            await self.child.astop(120.0)  # SIGTERM; SIGKILL after 120 s


async def broker_timestamps(s: Settings, topics: list[str]) -> None:
    """Records of `topics` get the broker's append time as timestamp (LogAppendTime): latencies
    are then measured on Kafka's clock, not on when this busy process ran a callback."""
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    admin = AIOKafkaAdminClient(bootstrap_servers=s.kafka.bootstrap)
    await admin.start()
    try:
        await admin.alter_configs([
            ConfigResource(ConfigResourceType.TOPIC, t,
                           configs={"message.timestamp.type": "LogAppendTime"})
            for t in topics
        ])  # fmt: skip
    finally:
        await admin.close()


async def produce_backlog(s: Settings, app: Settings, streams: int, total: int) -> None:
    topic = app.kafka.topics.predictions
    p = make_producer(s.kafka, role="bulk")
    await p.start()
    try:
        per = total // streams
        at0 = now_ms() - per * 25
        futures = []
        for seq in range(per):  # 40 fps of capture time, a switch every 5 s (200 frames)
            for i in range(streams):
                sid = f"bench-{i:03d}"
                futures.append(await p.send(topic, _prediction(sid, seq, at0 + seq * 25,
                                                              _label(i, seq, 200)),
                                            key=sid.encode()))  # fmt: skip
        await asyncio.gather(*futures)
    finally:
        await p.stop()


async def throughput(app: AppProc, total: int) -> tuple[float, float, float]:
    """(predictions/s, seconds, CPU seconds of the app) from the first to the last prediction
    applied."""
    async with httpx.AsyncClient(timeout=10) as c:
        first_t = None
        while True:
            n = await app.applied(c)
            now = time.perf_counter()
            if n > 0 and first_t is None:
                first_t, first_n, first_cpu = now, n, app.cpu_s()
            if n >= total:
                break
            await asyncio.sleep(0.5)  # polling a condition
    assert first_t is not None
    elapsed = max(1e-6, now - first_t)
    cpu = max(1e-6, app.cpu_s() - first_cpu)
    return (total - first_n) / elapsed, elapsed, cpu / (total - first_n)


async def latency(s: Settings, app: Settings, streams: int, rate: float, seconds: float,
                  start_seq: int) -> tuple[list[float], list[float]]:  # fmt: skip
    """Live predictions at `rate`/s; per segment.start: (from its first prediction, from the
    prediction that confirmed it), ms."""
    topic = app.kafka.topics.predictions
    events_topic = app.kafka.topics.events
    consumer = AIOKafkaConsumer(events_topic, bootstrap_servers=s.kafka.bootstrap,
                                group_id=None, auto_offset_reset="latest")  # fmt: skip
    await consumer.start()
    await consumer.seek_to_end()
    arrival: dict[tuple[str, int], float] = {}
    received: list[tuple[Event, float]] = []
    stop = asyncio.Event()

    async def read() -> None:
        while not stop.is_set():
            for records in (await consumer.getmany(timeout_ms=100)).values():
                for r in records:
                    e = Event.from_json(r.value)
                    if e.type == "segment.start":
                        received.append((e, float(r.timestamp)))  # appended to harclip.events

    reader = asyncio.create_task(read())
    p = make_producer(s.kafka, role="live")
    await p.start()
    fps = rate / streams
    per_phase = max(1, int(3 * fps))  # a switch every 3 s
    t0 = time.perf_counter()
    try:
        tick = 0
        while (elapsed := time.perf_counter() - t0) < seconds:
            seq = start_seq + tick
            at = now_ms()
            sends = []
            for i in range(streams):
                sid = f"bench-{i:03d}"
                label = _label(i + 1, tick, per_phase)
                sends.append((sid, await p.send(topic, _prediction(sid, seq, at, label),
                                                key=sid.encode())))  # fmt: skip
            for sid, fut in sends:  # arrival: the broker's append time (LogAppendTime)
                fut.add_done_callback(
                    lambda f, k=(sid, seq): arrival.__setitem__(k, float(f.result().timestamp))
                )
            tick += 1
            await asyncio.sleep(max(0.0, tick / fps - (time.perf_counter() - t0)))
        await p.flush()
        await asyncio.sleep(2.0)  # let the last confirmations arrive (bench, not a test)
    finally:
        stop.set()
        await reader
        await p.stop()
        await consumer.stop()
    from_first, from_confirm = [], []
    for e, t in received:
        a = arrival.get((e.stream_id, e.first_seq or -1))
        c = arrival.get((e.stream_id, e.last_seq or -1))
        if a is not None and (e.first_seq or 0) >= start_seq:
            from_first.append(t - a)
        if c is not None and (e.last_seq or 0) >= start_seq:
            from_confirm.append(t - c)
    _ = elapsed
    return from_first, from_confirm


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    s = load_settings()
    suffix = uuid.uuid4().hex[:10]
    app_s = scoped(s, suffix, args.store, args.min_segment_ms, args.gc_freeze)
    topics = app_s.kafka.topics
    await ensure_topics(s.kafka.model_copy(update={"topics": topics}), partitions=PARTITIONS)
    await broker_timestamps(s, [topics.predictions, topics.events])
    log = Path(f"/tmp/harclip-bench-stream-{suffix}.log")
    console.print(f"app log: {log}")
    app = AppProc(app_s, args.profile, log)
    try:
        console.print(f"backlog: {args.backlog} predictions for {args.streams} streams")
        await produce_backlog(s, app_s, args.streams, args.backlog)
        await app.start()
        rate, elapsed, cpu_per = await throughput(app, args.backlog)
        console.print(f"throughput: {rate:,.0f} predictions/s ({elapsed:.1f} s, "
                      f"{cpu_per * 1e6:.0f} us of app CPU each)")  # fmt: skip
        half = args.latency_rate or rate / 2
        console.print(f"latency: {half:,.0f} predictions/s for {args.latency_seconds:g} s")
        lag0, gc0 = await app.lag_buckets(), await app.gc_pauses()
        from_first, from_confirm = await latency(
            s, app_s, args.streams, half, args.latency_seconds, args.backlog // args.streams
        )
        lag1, gc1 = await app.lag_buckets(), await app.gc_pauses()
        lag = {le: n - lag0.get(le, 0.0) for le, n in lag1.items()}
    finally:
        await app.stop()
        await harness.cleanup(s, suffix)
    ff = np.array(from_first) if from_first else np.array([np.nan])
    fc = np.array(from_confirm) if from_confirm else np.array([np.nan])
    gen2 = [b - a for a, b in zip(gc0.get("2", (0.0, 0.0)), gc1.get("2", (0.0, 0.0)), strict=True)]
    young = sum(gc1.get(g, (0.0, 0.0))[0] - gc0.get(g, (0.0, 0.0))[0] for g in ("0", "1"))
    return {
        "events_throughput": round(rate, 1),
        "app_cpu_us_per_prediction": round(cpu_per * 1e6, 1),
        "throughput_per_app_cpu_s": round(1 / cpu_per, 1),
        "load_average": round(os.getloadavg()[0], 1),
        "p99_event_ms": round(float(np.percentile(ff, 99)), 1),
        "p50_event_ms": round(float(np.percentile(ff, 50)), 1),
        "p99_confirm_ms": round(float(np.percentile(fc, 99)), 1),
        "p50_confirm_ms": round(float(np.percentile(fc, 50)), 1),
        "segment_starts_measured": len(from_first),
        "p50_app_lag_ms": quantile_ms(lag, 0.5),
        "p99_app_lag_ms": quantile_ms(lag, 0.99),
        "gc_freeze": app_s.stream.gc_freeze,
        "latency_gc_gen2": int(gen2[0]),
        "latency_gc_gen2_ms": round(1000 * gen2[1], 1),
        "latency_gc_young": int(young),
        "run_gc_gen2": int(gc1.get("2", (0.0, 0.0))[0]),
        "run_gc_gen2_ms": round(1000 * gc1.get("2", (0.0, 0.0))[1], 1),
        "latency_rate": round(half, 1),
        "streams": args.streams,
        "backlog": args.backlog,
        "min_hold_ms": s.stream.min_hold_ms,
        "min_segment_ms": args.min_segment_ms,
        "store": args.store,
        "goal_throughput": 2000,
        "goal_p99_event_ms": s.stream.min_hold_ms + 300,
        "machine": f"{platform.machine()} {os.cpu_count()} cpu",
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.stream", description=__doc__.splitlines()[0])
    ap.add_argument("--streams", type=int, default=50)
    ap.add_argument("--backlog", type=int, default=20_000)
    ap.add_argument("--latency-seconds", type=float, default=20.0)
    ap.add_argument(
        "--min-segment-ms",
        type=int,
        default=600,
        help="600 = min_hold_ms: a segment.start is due when the hold is (see docs)",
    )
    ap.add_argument("--store", choices=("rocksdb", "memory"), default="rocksdb")
    ap.add_argument(
        "--latency-rate",
        type=float,
        help="predictions/s of the latency phase (default: half the throughput)",
    )
    ap.add_argument(
        "--gc-freeze",
        action=argparse.BooleanOptionalAction,
        help="the app with (or without) stream/gctune.py's freeze (default: the setting, "
        "HARCLIP_STREAM__GC_FREEZE, off)",
    )
    ap.add_argument("--profile", type=Path, help="run the app under cProfile, stats to this file")
    args = ap.parse_args(argv)
    result = asyncio.run(main_async(args))
    print_report(result, args.streams, args.profile)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
