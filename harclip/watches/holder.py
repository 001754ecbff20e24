"""The watches a process scores with, swapped as newer `watches` records arrive on
`harclip.control` (the worker scores with them, the API serves and edits them).

The one rule for a set, like `HeadHolder`'s for a head: a version not newer than the current one
is ignored (replays while catching up); a malformed record, or a set whose vectors are not the
model's embedding size, is refused, logged and counted (`harclip_control_refused{key="watches"}`)
and the previous set stays. `harclip_watches_version` and `harclip_watches` say what is in use.
Readers take `current` once per batch: one reference swap.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

from pydantic import ValidationError

from harclip.control import ControlMetrics
from harclip.watches.scoring import WatchScorer
from harclip.watches.spec import WatchSet
from harclip.watches.vectors import empty_set

log = logging.getLogger(__name__)


def _dims_problem(ws: WatchSet, dim: int) -> str | None:
    if ws.embed_dim != dim:
        return f"watches v{ws.version} are {ws.embed_dim}-dim, the model makes {dim}"
    for w in ws.watches:
        for vec in (w.positive, *w.negatives):
            if len(vec) != dim or not all(math.isfinite(x) for x in vec):
                return f"watch {w.spec.name!r} has a vector that is not {dim} finite numbers"
    return None


class WatchHolder:
    """The `WatchScorer` of the newest valid `WatchSet` (empty until one arrives)."""

    def __init__(self, embed_dim: int, logit_scale: float, metrics: ControlMetrics) -> None:
        self._dim = embed_dim
        self._scale = logit_scale
        self._metrics = metrics
        self._current = WatchScorer(empty_set(embed_dim), logit_scale)
        self._changed: list[Callable[[WatchSet], None]] = []

    @property
    def current(self) -> WatchScorer:
        return self._current

    @property
    def watch_set(self) -> WatchSet:
        return self._current.watch_set

    def on_change(self, callback: Callable[[WatchSet], None]) -> None:
        """Call `callback(new set)` after every swap (in the thread that offered it)."""
        self._changed.append(callback)

    def offer(self, ws: WatchSet) -> bool:
        """Use `ws` from the next batch on if it is newer and fits the model; True if swapped."""
        if ws.version <= self._current.version:
            return False
        problem = _dims_problem(ws, self._dim)
        if problem is not None:
            self._refuse(problem, "embed_dim")
            return False
        old = self._current
        self._current = WatchScorer(ws, self._scale, old.windows)
        self._metrics.watches_version.set(ws.version)
        self._metrics.watches.set(len(ws.watches))
        log.info("watches v%d in force: %d watches", ws.version, len(ws.watches))
        for callback in self._changed:
            callback(ws)
        return True

    def offer_raw(self, raw: bytes) -> None:
        """A `watches` record from the control topic: parsed, then offered; refused if
        malformed."""
        try:
            ws = WatchSet.model_validate_json(raw)
        except ValidationError as e:
            self._refuse(f"malformed record: {e.errors()[0].get('msg', e)}", "malformed")
            return
        self.offer(ws)

    def _refuse(self, why: str, reason: str) -> None:
        self._metrics.refused.labels("watches", reason).inc()
        log.warning("refused a watches record: %s", why)
