"""stream/gctune.py: start-up objects frozen, thresholds raised, collections timed per
generation in the app's metrics."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry

from stream.gctune import THRESHOLDS, GcPauses, tune


@pytest.fixture
def restored() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*before)


@pytest.mark.usefixtures("restored")
def test_tune_freezes_what_is_alive_and_sets_thresholds_only_when_given() -> None:
    before = gc.get_threshold()
    frozen = tune()
    # the interpreter, pytest, the app's modules; a frozen object can still be freed (its last
    # reference dropped, e.g. by another thread) after the count was taken: never more after
    assert frozen > 1000 and frozen - 100 < gc.get_freeze_count() <= frozen
    assert THRESHOLDS is None and gc.get_threshold() == before
    tune((5000, 10, 10))
    assert gc.get_threshold() == (5000, 10, 10)
    # a full collection now walks only what was made since: far fewer objects
    assert len(gc.get_objects(generation=2)) < frozen


def test_pauses_are_counted_per_generation() -> None:
    registry = CollectorRegistry()
    pauses = GcPauses(registry)
    pauses.install()
    pauses.install()  # once only
    try:
        assert gc.callbacks.count(pauses) == 1
        gc.collect(2)
        gc.collect(0)
    finally:
        pauses.remove()
    assert pauses not in gc.callbacks
    count = registry.get_sample_value
    assert (count("harclip_stream_gc_pause_seconds_count", {"generation": "2"}) or 0) >= 1
    assert (count("harclip_stream_gc_pause_seconds_count", {"generation": "0"}) or 0) >= 1
    assert (count("harclip_stream_gc_pause_seconds_sum", {"generation": "2"}) or 0) > 0
