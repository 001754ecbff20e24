"""Garbage collection for the events app: full collections off the per-record path.

After start-up the process holds ~146,000 long-lived objects (Faust, aiokafka, mode, the app's
tables and agents, their modules); every full (generation 2) collection walks all of them, which
took 100-160 ms here, and one landing between a prediction and its segment.start delays the
event by that much. `tune()` (called once the app has started, when `stream.gc_freeze` is set:
off by default, because bench.stream measured about twice the app CPU per prediction with it,
likely because once the start-up objects are frozen Python's rule that skips a full collection
until the long-lived objects grew by 25 % no longer holds them back, so full collections, each
cheaper, come far more often):

- collects once, then `gc.freeze()`s everything alive: start-up objects move to the permanent
  generation, which collections never walk, so a full collection walks only what was made since;
- leaves the thresholds at Python's (700, 10, 10): raising them (10,000 / 20 / 20 was tried)
  cut young collections 20-fold but cost about twice the CPU per prediction in bench.stream
  (garbage in cycles, e.g. fetched record buffers, lived longer), so `THRESHOLDS` is None.

A rebalance thaws them first (`thaw()`, from the app's partitions-revoked handler): Faust's
RocksDB store closes a revoked partition's database only by dropping it and calling
`gc.collect()`, which cannot free frozen objects (the database would stay open and locked, and
the partition could not be opened again: the failover test hung that way). Once the partitions
are assigned again (after the store's collection) `refreeze()` freezes what is alive again.

`GcPauses` (a `gc.callbacks` hook) counts collections and times them per generation, exported
as `harclip_stream_gc_pause_seconds` so a run shows the pauses it had (bench/stream.py reads it).
"""

from __future__ import annotations

import gc
import logging
import time
from typing import Any

from prometheus_client import CollectorRegistry, Histogram

log = logging.getLogger(__name__)

THRESHOLDS: tuple[int, int, int] | None = None  # None: Python's (700, 10, 10)
_BUCKETS_S = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5)


class GcPauses:
    """Collections and their durations per generation, as a Prometheus histogram."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.histogram = Histogram(
            "harclip_stream_gc_pause_seconds", "garbage collection pauses, by generation",
            ["generation"], buckets=_BUCKETS_S, registry=registry,
        )  # fmt: skip
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        elif self._started:
            self.histogram.labels(str(info.get("generation", "?"))).observe(
                time.perf_counter() - self._started
            )
            self._started = 0.0

    def install(self) -> None:
        if self not in gc.callbacks:
            gc.callbacks.append(self)

    def remove(self) -> None:
        if self in gc.callbacks:
            gc.callbacks.remove(self)


def tune(thresholds: tuple[int, int, int] | None = THRESHOLDS) -> int:
    """Collect, freeze what is alive (start-up objects) and set the thresholds when given;
    returns how many objects were frozen."""
    gc.collect()
    gc.freeze()
    if thresholds is not None:
        gc.set_threshold(*thresholds)
    frozen = gc.get_freeze_count()
    log.info("gc: %d start-up objects frozen, thresholds %s", frozen, gc.get_threshold())
    return frozen


def thaw() -> None:
    """Unfreeze: the next full collection (Faust's, on a revoked partition) may free anything."""
    gc.unfreeze()


def refreeze(enabled: bool = True) -> None:
    """Freeze what is alive again (no collection: the store has just collected), if `enabled`."""
    if enabled:
        gc.freeze()
