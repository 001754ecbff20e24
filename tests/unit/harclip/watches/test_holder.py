"""WatchHolder: newer sets swap in; malformed or wrongly sized ones are refused, the old stays."""

from __future__ import annotations

from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry

from harclip.control import ControlMetrics
from harclip.watches import Watch, WatchSet, WatchSpec
from harclip.watches.holder import WatchHolder


def _set(version: int, dim: int = 4, name: str = "a", vec_dim: int | None = None) -> WatchSet:
    v = [1.0] + [0.0] * ((vec_dim or dim) - 1)
    w = Watch(spec=WatchSpec(name=name, prompts=["p"]), version=1, positive=v, negatives=[v])
    return WatchSet(version=version, embed_dim=dim, watches=[w])


def _refused(registry: CollectorRegistry, reason: str) -> float:
    labels = {"key": "watches", "reason": reason}
    return registry.get_sample_value("harclip_control_refused_total", labels) or 0.0


def test_newer_sets_swap_in_older_ones_are_ignored() -> None:
    holder = WatchHolder(4, 100.0, ControlMetrics(CollectorRegistry()))
    seen: list[int] = []
    holder.on_change(lambda ws: seen.append(ws.version))
    assert len(holder.current) == 0 and holder.watch_set.version == 0
    assert holder.offer(_set(5))
    assert not holder.offer(_set(5, name="b")) and not holder.offer(_set(3))
    holder.offer_raw(_set(7, name="b").model_dump_json(by_alias=True).encode())
    assert [w.spec.name for w in holder.watch_set.watches] == ["b"] and seen == [5, 7]
    out = holder.current.score(np.eye(4, dtype=np.float32)[:1], ["cam"])
    assert out == [{"b": 0.5}]


def test_bad_sets_are_refused_logged_counted_and_the_old_stays(caplog: Any) -> None:
    registry = CollectorRegistry()
    holder = WatchHolder(4, 100.0, ControlMetrics(registry))
    holder.offer(_set(2))
    assert not holder.offer(_set(3, dim=8))
    assert not holder.offer(_set(4, vec_dim=3))
    holder.offer_raw(b'{"version": 9, "embed_dim": "x"}')
    holder.offer_raw(b"not json")
    assert _refused(registry, "embed_dim") == 2 and _refused(registry, "malformed") == 2
    assert holder.watch_set.version == 2 and "refused a watches record" in caplog.text
    assert registry.get_sample_value("harclip_watches_version") == 2
    assert registry.get_sample_value("harclip_watches") == 1
