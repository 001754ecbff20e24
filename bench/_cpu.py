"""CPU time of this process by thread group, from /proc/self/task (bench.pipeline).

Wall-clock throughput on a shared 2-core machine moves with the other processes; the CPU each
thread of the worker spends per frame does not (much). Each thread's run time comes from
`/proc/self/task/<tid>/schedstat` (nanoseconds; the `stat` ticks where it is missing). Groups:
  loop      the event-loop thread (Kafka fetch/produce, Redis, Elasticsearch, JSON, metrics)
  engine    the worker's `engine` thread and the native threads made after `mark()` (the
            engine's intra-op pool: ONNX Runtime's threads, including their spinning)
  decode    the decode pool (`decode*` threads)
  other     any other thread (asyncio's default executor, the bench's own producer thread is
            left out by name)
`ServicesMeter` adds the rest of the machine: the CPU of the local services (`harclip services`'
Kafka, Elasticsearch, Redis and S3 server, by their pids) and of the bench's own producer
threads over the same window, so a figure can say where every CPU second of the run went.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.table import Table

from harclip.config import Settings
from harclip.services import manager

_TASKS = Path("/proc/self/task")
_TICK_S = 1.0 / os.sysconf("SC_CLK_TCK")
GROUPS = ("loop", "engine", "decode", "other")


def thread_seconds() -> dict[int, float]:
    """Run time so far (seconds) of every live thread of this process, by native id."""
    out: dict[int, float] = {}
    for task in _TASKS.iterdir():
        try:
            out[int(task.name)] = int((task / "schedstat").read_text().split()[0]) / 1e9
        except (OSError, ValueError, IndexError):
            try:  # fields 14, 15 (utime, stime) after the ")" of the comm field
                rest = (task / "stat").read_text().rpartition(")")[2].split()
                out[int(task.name)] = (int(rest[11]) + int(rest[12])) * _TICK_S
            except (OSError, ValueError, IndexError):
                continue  # the thread ended meanwhile
    return out


@dataclass
class CpuMeter:
    """Per-group CPU seconds between `start()` and `stop()`; native threads that exist at
    `mark()` (before the engine was loaded) count as `other`, later ones as `engine`."""

    skip: tuple[str, ...] = ("bench-",)  # thread names left out (the bench's own threads)
    producer: float = 0.0  # CPU seconds of the bench's producer thread (it sets them)
    _known_native: set[int] = field(default_factory=set)
    _before: dict[int, float] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    threads: list[tuple[str, str, float]] = field(default_factory=list)  # group, name, seconds

    def mark(self) -> None:
        self._known_native = set(thread_seconds()) - _python_threads().keys()

    def start(self) -> None:
        self._before = thread_seconds()

    def stop(self) -> dict[str, float]:
        after = thread_seconds()
        py = _python_threads()
        out = dict.fromkeys(GROUPS, 0.0)
        for tid, t in after.items():
            name = py.get(tid)
            if name is not None and name.startswith(self.skip):
                continue
            group, used = self._group(tid, name), t - self._before.get(tid, 0.0)
            out[group] += used
            self.threads.append((group, name or _comm(tid), used))
        self.seconds = out
        return out

    def _group(self, tid: int, name: str | None) -> str:
        if tid == threading.main_thread().native_id:
            return "loop"
        if name is None:
            return "other" if tid in self._known_native else "engine"
        if name == "engine":
            return "engine"
        if name.startswith("decode"):
            return "decode"
        return "other"


def process_seconds(pid: int) -> float | None:
    """CPU seconds (user + system, all threads) of process `pid` so far; None if it is gone."""
    try:
        rest = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        return (int(rest[11]) + int(rest[12])) * _TICK_S
    except (OSError, ValueError, IndexError):
        return None


@dataclass
class ServicesMeter:
    """CPU seconds of each local service (`harclip services`, by the pid its status reports)
    between `start()` and `stop()`; a service this machine does not run is left out."""

    settings: Settings
    _pids: dict[str, int] = field(default_factory=dict)
    _before: dict[str, float] = field(default_factory=dict)
    _idle: float = 0.0
    seconds: dict[str, float] = field(default_factory=dict)
    idle: float = 0.0  # CPU seconds no process used (all cores) between start() and stop()

    def start(self) -> None:
        statuses = manager.status(manager.build(self.settings, []))
        self._pids = {s.name: s.pid for s in statuses if s.pid is not None}
        self._before = {n: t for n, pid in self._pids.items()
                        if (t := process_seconds(pid)) is not None}  # fmt: skip
        self._idle = idle_seconds()

    def stop(self) -> dict[str, float]:
        self.idle = idle_seconds() - self._idle
        after = {n: process_seconds(pid) for n, pid in self._pids.items()}
        self.seconds = {n: t - self._before[n] for n, t in after.items()
                        if n in self._before and t is not None}  # fmt: skip
        return self.seconds


def idle_seconds() -> float:
    """Idle + iowait CPU seconds of the whole machine so far (all cores, /proc/stat)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    return (int(fields[4]) + int(fields[5])) * _TICK_S


def _comm(tid: int) -> str:
    try:
        return "native " + (_TASKS / str(tid) / "comm").read_text().strip()
    except OSError:
        return "native"


def _python_threads() -> dict[int, str]:
    return {t.native_id: t.name for t in threading.enumerate() if t.native_id is not None}


def per_frame_us(seconds: dict[str, float], frames: int) -> dict[str, float]:
    """µs per frame by group, plus `outside engine` (all but engine) and `total`."""
    out = {k: round(v * 1e6 / max(frames, 1), 1) for k, v in seconds.items()}
    out["outside engine"] = round(sum(v for k, v in out.items() if k != "engine"), 1)
    out["total"] = round(out["outside engine"] + out["engine"], 1)
    return out


def cpu_table(cpu: dict[str, float]) -> None:
    t = Table(title="worker CPU µs per frame by thread group (auto pipeline run; raw engine: "
                    "the engine alone, whole process)")  # fmt: skip
    t.add_column("threads")
    t.add_column("CPU µs / frame", justify="right")
    for k, v in cpu.items():
        t.add_row(k, f"{v:,.1f}")
    Console().print(t)


def machine_us(cpu: CpuMeter, services: ServicesMeter, frames: int) -> dict[str, float]:
    """µs of CPU per frame over one metered window, by process: the worker (all its groups),
    the bench's producer threads, each local service, `machine` (their sum), and the cores'
    idle time (what no process used: the pipeline did not keep every core busy)."""
    per = max(frames, 1)
    out = {"worker": round(sum(cpu.seconds.values()) * 1e6 / per, 1),
           "producer (bench)": round(cpu.producer * 1e6 / per, 1)}  # fmt: skip
    out |= {name: round(t * 1e6 / per, 1) for name, t in services.seconds.items()}
    out["machine"] = round(sum(out.values()), 1)
    out["idle (all cores)"] = round(services.idle * 1e6 / per, 1)
    return out


def settle(min_idle: float = 0.85, timeout_s: float = 30.0, window_s: float = 1.0) -> float:
    """Wait until the machine is quiet: a `window_s` window in which at least `min_idle` of
    all cores' time was idle (what earlier phases left running, e.g. Elasticsearch merging the
    segments of an index, has finished), at most `timeout_s`; returns the seconds waited."""
    cores = os.cpu_count() or 1
    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        before = idle_seconds()
        time.sleep(window_s)
        if (idle_seconds() - before) / (window_s * cores) >= min_idle:
            break
    return time.monotonic() - start
