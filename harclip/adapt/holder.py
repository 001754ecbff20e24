"""The adapter a process applies after its head, swapped as `adapter` records arrive on
`harclip.control`; the one rule for accepting one, used by the worker and the API alike."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import orjson

from harclip.adapt.cache import Adapter, Applied, scopes_of
from harclip.control import ControlMetrics, HeadInUse
from harclip.errors import MessageError
from harclip.messages import ModelRef, now_ms
from harclip.model.bundle import Manifest

log = logging.getLogger(__name__)

CONTROL_SCHEMA = "harclip.adapter-control/1"


@dataclass(frozen=True)
class Published:
    """One `adapter` record of the control topic: the adapter in force (None: none) from
    `published_at` (ms since epoch) on. A rollback republishes an older adapter, newer."""

    adapter: Adapter | None
    published_at: int

    def to_control(self) -> bytes:
        doc = {"schema": CONTROL_SCHEMA, "published_at": self.published_at,
               "adapter": None if self.adapter is None else self.adapter.to_doc()}  # fmt: skip
        return orjson.dumps(doc)

    @classmethod
    def from_control(cls, raw: bytes) -> Published:
        """Parse a record; `MessageError` naming what is wrong."""
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError as e:
            raise MessageError(f"adapter record is not JSON: {e}") from None
        if not isinstance(doc, dict) or doc.get("schema") != CONTROL_SCHEMA:
            raise MessageError(f"adapter record: schema must be {CONTROL_SCHEMA}")
        at = doc.get("published_at")
        if not isinstance(at, int) or isinstance(at, bool) or at < 0:
            raise MessageError("adapter record: published_at must be ms since epoch")
        inner = doc.get("adapter")
        return cls(None if inner is None else Adapter.from_doc(inner), at)

    @classmethod
    def now(cls, adapter: Adapter | None) -> Published:
        return cls(adapter, now_ms())


class AdapterHolder:
    """The adapter in use (or none). A record not published after the current one is ignored
    (replays while catching up); an adapter whose keys differ in size from the model's
    embeddings, or that was built for another model, is refused, logged and counted; the
    previous one stays. Readers take `current` once per batch."""

    def __init__(self, manifest: Manifest, metrics: ControlMetrics) -> None:
        self._manifest = manifest
        self._metrics = metrics
        self._published = Published(None, -1)
        self._applied: Applied | None = None  # fitted to the last head seen
        self._changed: list[Callable[[], None]] = []

    @property
    def adapter(self) -> Adapter | None:
        return self._published.adapter

    @property
    def published_at(self) -> int:
        return self._published.published_at

    def on_change(self, callback: Callable[[], None]) -> None:
        """Call `callback()` after every swap (in the thread that offered the record)."""
        self._changed.append(callback)

    def offer(self, p: Published) -> bool:
        """Use `p` from the next batch on if it is newer and fits the model; True if swapped."""
        if p.published_at <= self._published.published_at:
            return False
        a, m = p.adapter, self._manifest
        if a is not None and a.embed_dim != m.embed_dim:
            self._refuse(
                f"adapter v{a.version} is {a.embed_dim}-dim, the model makes {m.embed_dim}"
            )
            return False
        if a is not None and a.model and a.model != f"{m.name}/{m.version}":
            self._refuse(
                f"adapter v{a.version} is for {a.model}, not {m.name}/{m.version}", "model"
            )
            return False
        self._published, self._applied = p, None
        self._metrics.adapter_version.set(0 if a is None else a.version)
        if a is None:
            log.info("no adapter in use")
        else:
            log.info("adapter version %d in use (%d items, %d labels, alpha %g, beta %g)",
                     a.version, a.size, len(a.labels), a.alpha, a.beta)  # fmt: skip
        for callback in self._changed:
            callback()
        return True

    def offer_raw(self, raw: bytes) -> None:
        """An `adapter` record from the control topic: parsed, then offered."""
        try:
            p = Published.from_control(raw)
        except MessageError as e:
            self._refuse(str(e), "malformed")
            return
        self.offer(p)

    def fitted(self, in_use: HeadInUse) -> Applied | None:
        """The adapter in use fitted to `in_use.head` (refitted once per new head)."""
        a, applied = self.adapter, self._applied
        if a is None:
            return None
        if applied is None or applied.adapter is not a or applied.head is not in_use.head:
            applied = self._applied = Applied.fit(a, in_use.head)
        return applied

    def top_k(
        self, in_use: HeadInUse, emb: np.ndarray, streams: Sequence[str], k: int
    ) -> tuple[list[list[tuple[str, float]]], list[ModelRef]]:
        """Per row of `emb` [N, D] (a frame of `streams[i]`): its k best (label, probability)
        and the ModelRef its Prediction carries (`adapter` set where the adapter applied)."""
        return score_top_k(in_use, self.fitted(in_use), emb, streams, k)

    def _refuse(self, why: str, reason: str = "embed_dim") -> None:
        self._metrics.refused.labels("adapter", reason).inc()
        log.warning("refused an adapter: %s", why)


def score_top_k(
    in_use: HeadInUse, applied: Applied | None, emb: np.ndarray, streams: Sequence[str], k: int
) -> tuple[list[list[tuple[str, float]]], list[ModelRef]]:
    """The head's top-k, with the adapter's cache added for the rows of streams in its scopes."""
    if applied is None:
        return in_use.head.top_k(emb, k), [in_use.model] * len(emb)  # [N, D] -> N × k
    scope = scopes_of(applied.adapter, streams)
    inside = np.flatnonzero(scope >= 0)
    if len(inside) == len(emb):  # the usual case: every row is in a scope
        model = in_use.model.model_copy(update={"adapter": applied.adapter.version})
        return applied.top_k(emb, scope, k), [model] * len(emb)
    top = in_use.head.top_k(emb, k)
    models = [in_use.model] * len(top)
    if not len(inside):
        return top, models
    adapted = applied.top_k(emb[inside], scope[inside], k)  # one product with the keys for all
    model = in_use.model.model_copy(update={"adapter": applied.adapter.version})
    for r, row in zip(inside, adapted, strict=True):
        top[r], models[r] = row, model
    return top, models
