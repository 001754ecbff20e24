"""The one rule for accepting a head (`HeadHolder`) and head versions (`next_version`)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry

from harclip.control import ControlMetrics, HeadHolder
from harclip.model.head import Head, next_version


def head(version: int, dim: int = 4, labels: tuple[str, ...] = ("a", "b")) -> Head:
    w = np.ones((dim, len(labels)), np.float32)
    return Head(labels, w, np.zeros(len(labels), np.float32), 10.0, version)


def holder(dim: int = 4) -> tuple[HeadHolder, CollectorRegistry]:
    registry = CollectorRegistry()
    manifest: Any = SimpleNamespace(name="m", version="7", embed_dim=dim)
    return HeadHolder(manifest, head(5, dim), ControlMetrics(registry)), registry


def refused(registry: CollectorRegistry, reason: str) -> float:
    value = registry.get_sample_value(
        "harclip_control_refused_total", {"key": "head", "reason": reason}
    )
    return value or 0.0


def test_newer_heads_swap_older_ones_are_ignored() -> None:
    h, registry = holder()
    seen: list[int] = []
    h.on_change(lambda new: seen.append(new.model.head_version))
    assert not h.offer(head(5)) and not h.offer(head(3))
    assert h.offer(head(9))
    assert h.current.head.version == 9 and h.current.model.head_version == 9
    assert h.current.model.name == "m" and h.current.model.version == "7"
    assert seen == [9]
    assert registry.get_sample_value("harclip_head_version") == 9


def test_a_head_of_the_wrong_size_is_refused_logged_and_counted(caplog: Any) -> None:
    h, registry = holder(dim=4)
    assert not h.offer(head(9, dim=8))
    assert h.head.version == 5
    assert refused(registry, "embed_dim") == 1
    assert "8-dim, the model makes 4" in caplog.text


def test_a_malformed_record_is_refused_and_counted() -> None:
    h, registry = holder()
    h.offer_raw(b"{not json")
    h.offer_raw(b'{"schema": "harclip.head/1"}')
    assert h.head.version == 5 and refused(registry, "malformed") == 2
    h.offer_raw(head(11).to_control())
    assert h.head.version == 11


def test_versions_are_newer_unique_and_ordered_by_time() -> None:
    versions = [next_version(0) for _ in range(200)]
    assert len(set(versions)) == len(versions)
    assert next_version(versions[-1] + 10**12) == versions[-1] + 10**12 + 1  # clock behind
    later = next_version(0)
    assert later // 1000 >= max(versions) // 1000  # the time part never goes back


def test_every_model_ref_names_the_engine_once_it_is_known() -> None:
    h, _ = holder()
    assert h.current.model.engine is None  # before the engine is loaded (auto not resolved)
    h.use_engine("onnx-int8")
    assert h.current.model.engine == "onnx-int8" and h.current.head.version == 5
    assert h.offer(head(6))
    assert h.current.model.engine == "onnx-int8" and h.current.model.head_version == 6
