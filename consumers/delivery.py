"""Delivery of a batch to every sink: the worker's one decision point for sink errors.

`SinkUnavailable` (transient) is retried with backoff for the failed sinks only, while the worker
pauses fetching (`trouble` names them; `/ready` reports them). `SinkRefused` (for good) moves the
refused frames to the dead-letter topic, which must acknowledge too before the batch counts as
delivered. Any other exception is a bug and propagates.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

from consumers.metrics import WorkerMetrics
from consumers.sinks import KafkaSink, Sink
from consumers.work import BatchResult, Predicted, Work
from harclip.errors import SinkRefused, SinkUnavailable
from harclip.retry import SINK_RETRY, Attempts

log = logging.getLogger(__name__)


class Delivery:
    """Writes batches through `sinks` (which include `dlq`, the Kafka sink that also carries the
    dead-letter topic). `give_up_at` (monotonic seconds), once set, bounds the retries."""

    def __init__(
        self,
        sinks: Sequence[Sink],
        dlq: KafkaSink,
        metrics: WorkerMetrics,
        on_change: Callable[[], None] = lambda: None,
    ) -> None:
        self._sinks = list(sinks)
        self._dlq = dlq
        self._metrics = metrics
        self._on_change = on_change  # after every round of flushes (trouble may have changed)
        self.trouble: set[str] = set()  # sinks failing right now
        self.give_up_at: float | None = None

    async def deliver(self, result: BatchResult) -> bool:
        """Flush every sink until all acknowledged `result`; False if `give_up_at` passed while a
        sink stayed down (the batch must then stay uncommitted)."""
        pending: list[Sink] = list(self._sinks)
        for sink in pending:
            sink.add(result)
        attempts = Attempts(SINK_RETRY)
        while True:
            outcomes = await asyncio.gather(*(s.flush() for s in pending), return_exceptions=True)
            failed: list[Sink] = []
            dead: list[Work] = []
            for sink, out in zip(pending, outcomes, strict=True):
                if out is None:
                    continue
                if not isinstance(out, SinkUnavailable | SinkRefused):
                    raise out
                self._metrics.sink_errors.labels(sink.name).inc()
                if isinstance(out, SinkUnavailable):
                    failed.append(sink)
                    log.warning("sink %s: %s; retrying in %.1f s", sink.name, out, attempts.pause_s)
                    continue
                sink.clear()  # refused for good: retrying cannot help
                moved = dead_letter(result, sink.name, out.frames or None, str(out))
                log.error("sink %s refused %d frames (to the DLQ): %s", sink.name, len(moved), out)
                dead += moved
            self.trouble = {s.name for s in failed}
            self._on_change()
            if dead:
                self._dlq.dead_letter(dead)
            pending = failed + ([self._dlq] if dead and self._dlq not in failed else [])
            if not pending:
                return True
            if not failed:
                continue  # only the new DLQ records to write: no backoff
            pause = attempts.failed(deadline=self.give_up_at)
            if pause is None:
                log.error("giving up on sinks %s: the batch stays uncommitted",
                          ", ".join(sorted(self.trouble)))  # fmt: skip
                for sink in pending:
                    sink.clear()
                return False
            await asyncio.sleep(pause)


def dead_letter(
    result: BatchResult, sink: str, refused: dict[str, str] | None, reason: str
) -> list[Work]:
    """Move the frames `sink` refused for good (frame_id -> reason; None: all of the batch's
    predicted frames, for `reason`) from `result.predicted` to `result.failed`, their `error`
    set for the DLQ; returns them. Frames already moved are not moved twice."""
    keep: list[Predicted] = []
    dead: list[Work] = []
    for p in result.predicted:
        why = reason if refused is None else refused.get(p.prediction.frame_id)
        if why is None:
            keep.append(p)
            continue
        p.work.error = f"sink {sink} refused: {why}"
        dead.append(p.work)
    result.predicted = keep
    result.failed += dead
    return dead
