"""bench._cpu: each thread's CPU time lands in its group (no timing thresholds: only where)."""

from __future__ import annotations

import os
import threading
import time

from bench._cpu import (
    CpuMeter,
    ServicesMeter,
    idle_seconds,
    machine_us,
    per_frame_us,
    process_seconds,
    thread_seconds,
)
from harclip.config import Settings


def _burn(seconds: float) -> None:
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


def test_threads_land_in_their_groups() -> None:
    meter = CpuMeter()
    meter.mark()
    meter.start()
    burnt, done = threading.Barrier(5), threading.Event()

    def work() -> None:
        _burn(0.03)
        burnt.wait()
        done.wait()  # alive until read: a finished thread leaves /proc/self/task

    threads = [threading.Thread(target=work, name=name)
               for name in ("engine", "decode_0", "asyncio_0", "bench-producer")]  # fmt: skip
    for t in threads:
        t.start()
    _burn(0.03)  # the main thread: `loop`
    burnt.wait()
    seen = meter.stop()
    done.set()
    for t in threads:
        t.join()
    assert all(seen[g] > 0 for g in ("loop", "engine", "decode", "other")), seen
    assert {name for _, name, _ in meter.threads} >= {"engine", "decode_0", "asyncio_0"}
    assert "bench-producer" not in {name for _, name, _ in meter.threads}  # left out
    assert set(thread_seconds()) >= {threading.main_thread().native_id}


def test_per_frame_adds_outside_and_total() -> None:
    out = per_frame_us({"loop": 0.002, "engine": 0.02, "decode": 0.001, "other": 0.001}, 2)
    assert out == {"loop": 1000.0, "engine": 10000.0, "decode": 500.0, "other": 500.0,
                   "outside engine": 2000.0, "total": 12000.0}  # fmt: skip


def test_a_process_cpu_time_and_a_gone_one() -> None:
    _burn(0.02)
    assert (process_seconds(os.getpid()) or 0.0) >= 0.02
    assert process_seconds(2**22 + 1) is None  # above pid_max: never a process
    assert idle_seconds() >= 0.0


def test_the_machine_account_adds_every_process() -> None:
    cpu = CpuMeter(seconds={"loop": 0.002, "engine": 0.02, "decode": 0.0, "other": 0.0},
                   producer=0.001)  # fmt: skip
    services = ServicesMeter(Settings(), seconds={"kafka": 0.004, "elasticsearch": 0.006},
                             idle=0.01)  # fmt: skip
    out = machine_us(cpu, services, 2)
    assert out == {"worker": 11000.0, "producer (bench)": 500.0, "kafka": 2000.0,
                   "elasticsearch": 3000.0, "machine": 16500.0,
                   "idle (all cores)": 5000.0}  # fmt: skip
