"""bench._cpu: each thread's CPU time lands in its group (no timing thresholds: only where)."""

from __future__ import annotations

import threading
import time

from bench._cpu import CpuMeter, per_frame_us, thread_seconds


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
