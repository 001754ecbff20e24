"""`evidence_ratio` of bench.evidence: the events app's predictions/s with evidence on vs off in
the same run, on the real local services.

Per mode, one `python -m stream` app of its own (topics, group, index, Redis keys; objects under
the run's own stream ids, deleted afterwards) reads a backlog: `streams` cameras, each `seconds`
of capture at `fps` (a JPEG frame on the frames topic and its prediction, record timestamp =
capture time), the label switching every `switch_s` (so each stream has a segment.start and a
segment.end per switch: a snapshot each, a clip of switch + pre-roll + post-roll per end).
Modes (run in turn, `--repeat` times; ratios of the means): `off` (EVIDENCE=false), `pool` (the
default: EVIDENCE_PROCESSES=1, niced, builds yield while the agents are behind:
stream/evidence/pace.py), `pool-eager` (the same without yielding: EVIDENCE_DEFER_LAG_S=0),
`in-process` (EVIDENCE_PROCESSES=0: decode and encode in the app's process, in threads).
predictions/s is bench.stream's over the whole backlog (first to last prediction applied,
/metrics); after it the run waits until the evidence backlog is done (at most `--drain-s`), and
reports when the last evidence was done (`evidence_done_s`, from the first prediction applied),
the seconds builds waited for the agents (`deferred_s`, summed over builds) and the evidence
processes' CPU per event. `evidence_cpu_ratio` is the app process's CPU per prediction off /
on: what evidence costs the agents' process itself, less at the mercy of other jobs on a shared
machine. `evidence_ratio_eager` is `pool-eager` / off: what yielding buys.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console

from bench import harness
from bench.stream import AppProc, _prediction, scoped
from harclip.config import Settings, load_settings
from harclip.io.kafka import make_producer
from harclip.io.objects import ObjectStore
from harclip.io.topics import ensure_topics
from harclip.messages import Frame, now_ms

console = Console(stderr=True)
MODES: dict[str, dict[str, object]] = {
    "off": {"evidence": False},
    "pool": {"evidence": True, "evidence_processes": 1},
    "pool-eager": {"evidence": True, "evidence_processes": 1, "evidence_defer_lag_s": 0.0},
    "in-process": {"evidence": True, "evidence_processes": 0},
}
LABELS = ("running", "fighting", "sitting", "dancing", "walking", "cycling")


def _metric(text: str, name: str) -> float:
    """The sum of a metric's samples (all labels) in Prometheus text."""
    return sum(float(v) for v in re.findall(rf"^{name}(?:\{{[^}}]*\}})? ([\d.e+-]+)$", text, re.M))


def children_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) of `pid`'s live child processes (the evidence workers)."""
    total = 0.0
    try:
        kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return 0.0
    for k in kids:
        try:
            fields = Path(f"/proc/{k}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


async def app_settings(s: Settings, suffix: str, mode: str) -> Settings:
    """The events app's settings for `mode` on names of their own (`suffix`), topics made."""
    base = scoped(s, suffix, "memory", 1000)
    app_s = base.model_copy(update={"stream": base.stream.model_copy(update=MODES[mode])})
    await ensure_topics(s.kafka.model_copy(update={"topics": app_s.kafka.topics}), partitions=3)
    return app_s


async def produce(
    s: Settings, app: Settings, sids: list[str], fps: float, seconds: float, switch_s: float,
    jpegs: list[bytes],
) -> int:  # fmt: skip
    """Frames and predictions of every stream, capture time ending 5 s ago; how many
    predictions."""
    topics = app.kafka.topics
    p = make_producer(s.kafka, role="bulk")
    await p.start()
    n = int(seconds * fps)
    step = 1000 / fps
    at0 = now_ms() - int(seconds * 1000) - 5000
    per_phase = max(1, int(switch_s * fps))
    try:
        futures = []
        for seq in range(n):
            at = at0 + int(seq * step)
            for i, sid in enumerate(sids):
                f = Frame(f"{sid}-{seq:06d}", sid, seq, at, jpegs[(seq + i) % len(jpegs)])
                futures.append(await p.send(topics.frames, f.data, key=sid.encode(),
                                            headers=f.headers(), timestamp_ms=at))  # fmt: skip
                label = LABELS[(i + seq // per_phase) % len(LABELS)]
                futures.append(await p.send(topics.predictions, _prediction(sid, seq, at, label),
                                            key=sid.encode(), timestamp_ms=at))  # fmt: skip
        await asyncio.gather(*futures)
    finally:
        await p.stop()
    return n * len(sids)


POLL_S = 0.1  # /metrics polls while the backlog is read: windows are 3-15 s


async def throughput(app: AppProc, total: int) -> tuple[float, float, float]:
    """(predictions/s, seconds, the app's CPU seconds per prediction) from the first to the
    last prediction applied, polled every `POLL_S` (bench.stream's 0.5 s is up to 15 % of a
    3 s window; the app renders /metrics in both modes alike)."""
    async with httpx.AsyncClient(timeout=10) as c:
        first: tuple[float, float, float] | None = None
        while True:
            n = await app.applied(c)
            now = time.perf_counter()
            if n > 0 and first is None:
                first = (now, n, app.cpu_s())
            if n >= total:
                break
            await asyncio.sleep(POLL_S)  # polling a condition
    assert first is not None
    elapsed = max(1e-6, now - first[0])
    done = max(1.0, total - first[1])
    return done / elapsed, elapsed, max(1e-6, app.cpu_s() - first[2]) / done


async def drain(app: AppProc, limit_s: float) -> dict[str, float]:
    """Waits until the evidence backlog is empty and the evidence counts stay put (3 polls);
    the evidence figures then."""
    t0 = time.perf_counter()
    last, same = -1.0, 0
    async with httpx.AsyncClient(timeout=10) as c:
        while time.perf_counter() - t0 < limit_s:
            text = (await c.get(f"http://127.0.0.1:{app.port}/metrics")).text
            done = _metric(text, "harclip_stream_evidence_written_total") + _metric(
                text, "harclip_stream_evidence_missing_total"
            )
            backlog = _metric(text, "harclip_stream_evidence_backlog")
            same = same + 1 if backlog == 0 and done == last and done > 0 else 0
            if same >= 3:
                break
            last = done
            await asyncio.sleep(1.0)  # polling a condition
    return {
        "drain_s": round(time.perf_counter() - t0, 1),
        "written": _metric(text, "harclip_stream_evidence_written_total"),
        "missing": _metric(text, "harclip_stream_evidence_missing_total"),
        "clips": _metric(text, "harclip_stream_evidence_clip_seconds_count"),
        "clip_s_sum": _metric(text, "harclip_stream_evidence_clip_seconds_sum"),
        "deferred_s": round(_metric(text, "harclip_stream_evidence_deferred_seconds_total"), 1),
    }


async def one_mode(
    s: Settings, mode: str, args: Any, jpegs: list[bytes], token: str
) -> dict[str, Any]:
    suffix = f"{token}{list(MODES).index(mode)}"
    console.print(f"{mode}: {args.streams} streams, {args.capture_seconds:g} s at "
                  f"{args.ratio_fps:g} fps ({suffix})")  # fmt: skip
    app_s = await app_settings(s, suffix, mode)
    sids = [f"ev{suffix}-{i:03d}" for i in range(args.streams)]
    total = await produce(s, app_s, sids, args.ratio_fps, args.capture_seconds, args.switch_s,
                          jpegs)  # fmt: skip
    app = AppProc(app_s, None, Path(f"/tmp/harclip-bench-evidence-{suffix}.log"))
    out: dict[str, Any] = {"mode": mode, "predictions": total}
    try:
        await app.start()
        rate, elapsed, cpu_per = await throughput(app, total)
        out |= {"predictions_s": round(rate, 1), "seconds": round(elapsed, 1),
                "app_cpu_us_per_prediction": round(cpu_per * 1e6, 1)}  # fmt: skip
        console.print(f"{mode}: {rate:,.0f} predictions/s")
        if MODES[mode]["evidence"]:
            assert app.child is not None
            cpu0 = app.cpu_s()
            ev = await drain(app, args.drain_s)
            workers = children_cpu_s(app.child.pid)  # 0 in-process
            events = max(1.0, ev["written"] + ev["missing"])
            ev |= {"evidence_done_s": round(elapsed + ev["drain_s"], 1),
                   "worker_cpu_s": round(workers, 2),
                   "app_cpu_s_while_draining": round(app.cpu_s() - cpu0, 2),
                   "worker_cpu_s_per_event": round(workers / events, 3),
                   "app_cpu_s_for_agents": round(cpu_per * total, 2)}  # fmt: skip
            out |= ev
    finally:
        await app.stop()
        await harness.cleanup(s, suffix)
        await _delete_objects(s, sids)
    return out


async def _delete_objects(s: Settings, sids: list[str]) -> None:
    store = ObjectStore(s.objects)
    try:
        await store.start()
        for sid in sids:
            await store.delete([o.key for o in await store.list(f"evidence/{sid}/")])
    except Exception as e:  # the bench's leftovers only
        console.print(f"[yellow]could not delete the run's objects: {e!r}[/yellow]")
    finally:
        await store.close()


async def ratio(args: Any, jpegs: list[bytes]) -> dict[str, Any]:
    """Every mode of `args.modes` in turn; their rows and the ratios to `off`."""
    s = load_settings()
    token = uuid.uuid4().hex[:7]
    rows = [
        await one_mode(s, m, args, jpegs, f"{token}{r}")
        for r in range(args.repeat)
        for m in args.modes
    ]
    out: dict[str, Any] = {"modes": rows, "load_average": round(os.getloadavg()[0], 1)}

    def mean(mode: str, key: str) -> float | None:
        got = [r[key] for r in rows if r["mode"] == mode and key in r]
        return sum(got) / len(got) if got else None

    off, off_cpu = mean("off", "predictions_s"), mean("off", "app_cpu_us_per_prediction")
    for mode, name in (("pool", ""), ("pool-eager", "_eager"), ("in-process", "_in_process")):
        rate, cpu = mean(mode, "predictions_s"), mean(mode, "app_cpu_us_per_prediction")
        if off and rate:  # predictions/s, on / off (mean over the repeats)
            out[f"evidence_ratio{name}"] = round(rate / off, 3)
        if off_cpu and cpu:  # the agents' process: CPU per prediction, off / on
            out[f"evidence_cpu_ratio{name}"] = round(off_cpu / cpu, 3)
    return out
