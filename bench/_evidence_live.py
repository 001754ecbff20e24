"""`--live` of bench.evidence: the events app at the cameras' real rate, evidence off vs on.

The figure that sizes a deployment: per mode (`--modes`, in turn, `--live-repeat` rounds), one
`python -m stream` app of its own and `--live-streams` cameras sending, in real time for
`--live-seconds`, a JPEG frame and its prediction each at `--ratio-fps` (capture time = now =
record timestamp), the label switching every `--switch-s`. Reported per mode: the app process's
CPU per prediction (after a 5 s warm-up, to the end of the sending), the `segment.start`
latency p50/p99 (the event's record timestamp on harclip.events minus the send time of its first
prediction, hold included: `event_ms`; minus that of the prediction that confirmed it:
`confirm_ms`, the app's own delay), the evidence processes' CPU, and the evidence delay (the
republished copy's timestamp minus the event's: p50/p99, and how many of the events that need
evidence got it within `--live-drain-s` after the sending stopped). `--live-profile PATH`: the
app under cProfile, its stats in PATH.<mode> (its CPU per prediction then includes the
profiler's).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from aiokafka import AIOKafkaConsumer
from rich.console import Console

from bench import harness
from bench._evidence_ratio import LABELS, MODES, _delete_objects, app_settings, children_cpu_s
from bench.stream import AppProc, _prediction
from harclip.config import Settings, load_settings
from harclip.io.kafka import make_producer
from harclip.messages import Event, Frame, now_ms

console = Console(stderr=True)
WARM_S = 5.0
NEEDS = ("segment.start", "segment.end")


def _q(values: list[float], q: float) -> float | None:
    return round(float(np.quantile(values, q)), 1) if values else None


class Events:
    """Reads the app's events topic: segment.start delays, and each evidence copy's delay."""

    def __init__(self, s: Settings, topic: str, sent: dict[tuple[str, int], int]) -> None:
        self._c = AIOKafkaConsumer(topic, bootstrap_servers=s.kafka.bootstrap, group_id=None,
                                   auto_offset_reset="earliest")  # fmt: skip
        self._sent = sent
        self.event_ms: list[float] = []
        self.confirm_ms: list[float] = []
        self.first_ts: dict[str, int] = {}  # event id -> its record timestamp (needs evidence)
        self.evidence_s: list[float] = []
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._c.start()
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        while not self._stop.is_set():
            for records in (await self._c.getmany(timeout_ms=200)).values():
                for r in records:
                    self._one(Event.from_json(r.value or b""), r.timestamp)

    def _one(self, e: Event, ts: int) -> None:
        if e.evidence is not None:
            if (t0 := self.first_ts.get(e.event_id)) is not None:
                self.evidence_s.append((ts - t0) / 1000)
            return
        if e.type in NEEDS:
            self.first_ts[e.event_id] = ts
        if e.type == "segment.start":
            first = self._sent.get((e.stream_id, e.first_seq if e.first_seq is not None else -1))
            last = self._sent.get((e.stream_id, e.last_seq if e.last_seq is not None else -1))
            if first is not None:
                self.event_ms.append(ts - first)
            if last is not None:
                self.confirm_ms.append(ts - last)

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            await self._task
        await self._c.stop()


async def send_live(
    s: Settings, app: Settings, sids: list[str], args: Any, jpegs: list[bytes],
    sent: dict[tuple[str, int], int], at_warm: Any,
) -> int:  # fmt: skip
    """Frames and predictions of every camera at the real rate for `--live-seconds`; calls
    `at_warm()` once after `WARM_S`; the predictions sent."""
    topics = app.kafka.topics
    p = make_producer(s.kafka, role="live")
    await p.start()
    fps = args.ratio_fps
    per_phase = max(1, int(args.switch_s * fps))
    t0, tick, warmed = time.perf_counter(), 0, False
    try:
        while time.perf_counter() - t0 < args.live_seconds:
            if not warmed and time.perf_counter() - t0 >= WARM_S:
                warmed = True
                await at_warm()
            at = now_ms()
            for i, sid in enumerate(sids):
                f = Frame(f"{sid}-{tick:06d}", sid, tick, at, jpegs[(tick + i) % len(jpegs)])
                await p.send(topics.frames, f.data, key=sid.encode(), headers=f.headers(),
                             timestamp_ms=at)  # fmt: skip
                label = LABELS[(i + tick // per_phase) % len(LABELS)]
                await p.send(topics.predictions, _prediction(sid, tick, at, label),
                             key=sid.encode(), timestamp_ms=at)  # fmt: skip
                sent[(sid, tick)] = at
            tick += 1
            await asyncio.sleep(max(0.0, tick / fps - (time.perf_counter() - t0)))
        await p.flush()
    finally:
        await p.stop()
    return tick * len(sids)


async def one_live(
    s: Settings, mode: str, args: Any, jpegs: list[bytes], suffix: str
) -> dict[str, Any]:
    console.print(f"live {mode}: {args.live_streams} cameras at {args.ratio_fps:g} fps for "
                  f"{args.live_seconds:g} s ({suffix})")  # fmt: skip
    app_s = await app_settings(s, suffix, mode)
    sids = [f"lv{suffix}-{i:03d}" for i in range(args.live_streams)]
    prof = Path(f"{args.live_profile}.{mode}") if args.live_profile else None
    app = AppProc(app_s, prof, Path(f"/tmp/harclip-bench-evidence-{suffix}.log"))
    sent: dict[tuple[str, int], int] = {}
    events = Events(s, app_s.kafka.topics.events, sent)
    out: dict[str, Any] = {"mode": mode, "cameras": args.live_streams}
    http = httpx.AsyncClient(timeout=10)
    try:
        await app.start()
        await events.start()
        mark: list[float] = []

        async def at_warm() -> None:
            mark.extend((app.cpu_s(), await app.applied(http), time.perf_counter()))

        total = await send_live(s, app_s, sids, args, jpegs, sent, at_warm)
        deadline = time.perf_counter() + 30.0
        while await app.applied(http) < total and time.perf_counter() < deadline:
            await asyncio.sleep(0.2)  # polling a condition: the last predictions applied
        cpu, n, t = app.cpu_s() - mark[0], await app.applied(http) - mark[1], mark[2]
        out |= {"predictions": int(n), "predictions_s": round(n / (time.perf_counter() - t), 1),
                "app_cpu_us_per_prediction": round(cpu / max(1.0, n) * 1e6, 1),
                "p50_event_ms": _q(events.event_ms, 0.5), "p99_event_ms": _q(events.event_ms, 0.99),
                "p50_confirm_ms": _q(events.confirm_ms, 0.5),
                "p99_confirm_ms": _q(events.confirm_ms, 0.99)}  # fmt: skip
        if MODES[mode]["evidence"]:
            out |= await _evidence_after(app, events, args.live_drain_s)
    finally:
        await http.aclose()
        await events.stop()
        await app.stop()
        await harness.cleanup(s, suffix)
        await _delete_objects(s, sids)
    console.print(f"live {mode}: {out}")
    return out


async def _evidence_after(app: AppProc, events: Events, limit_s: float) -> dict[str, Any]:
    t0 = time.perf_counter()
    while len(events.evidence_s) < len(events.first_ts) and time.perf_counter() - t0 < limit_s:
        await asyncio.sleep(0.5)  # polling a condition: the evidence of the last events
    assert app.child is not None
    return {"evidence_events": len(events.first_ts), "evidence_done": len(events.evidence_s),
            "p50_evidence_s": _q(events.evidence_s, 0.5),
            "p99_evidence_s": _q(events.evidence_s, 0.99),
            "worker_cpu_s": round(children_cpu_s(app.child.pid), 2)}  # fmt: skip


async def live(args: Any, jpegs: list[bytes], token: str) -> dict[str, Any]:
    """Every mode of `args.modes` live, in turn, `args.live_repeat` rounds; rows, on/off."""
    s = load_settings()
    rows = [
        await one_live(s, m, args, jpegs, f"{token}l{r}{list(MODES).index(m)}")
        for r in range(args.live_repeat)
        for m in args.modes
    ]
    out: dict[str, Any] = {"live": rows}

    def mean(mode: str, key: str) -> float | None:
        got = [r[key] for r in rows if r["mode"] == mode and r.get(key) is not None]
        return sum(got) / len(got) if got else None

    off_cpu, on_cpu = (
        mean("off", "app_cpu_us_per_prediction"),
        mean("pool", "app_cpu_us_per_prediction"),
    )
    if off_cpu and on_cpu:
        out["live_cpu_ratio"] = round(off_cpu / on_cpu, 3)
    for key in ("p99_event_ms", "p99_confirm_ms"):
        out[f"live_{key}_off"], out[f"live_{key}_on"] = mean("off", key), mean("pool", key)
    return out
