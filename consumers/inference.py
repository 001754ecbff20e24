"""The engine stage of the worker, run in its own thread: collect a micro-batch of decoded Work,
embed the good frames, apply the head, the adapter and the watches, and build one Prediction per
frame.

Steps per batch, in this order: batch (collect_batch) -> embed -> head -> adapter -> watches ->
predictions.
The result (`BatchResult`) carries every record of the batch so the sink stage can commit its
offsets.
"""

from __future__ import annotations

import logging
import time

from consumers.work import BatchResult, Predicted, Work
from harclip.adapt.holder import AdapterHolder, score_top_k
from harclip.batching import Batch
from harclip.control import HeadInUse
from harclip.engines import Engine
from harclip.engines.gpu_decode import stack_pixels
from harclip.errors import HarclipError
from harclip.messages import LabelScore, Latency, Prediction, now_ms
from harclip.watches.scoring import WatchScorer

log = logging.getLogger(__name__)


def run_batch(
    batch: Batch[Work],
    engine: Engine,
    in_use: HeadInUse,
    top_k: int,
    *,
    adapters: AdapterHolder | None = None,
    watches: WatchScorer | None = None,
) -> BatchResult:
    """Embed the batch's good frames with `engine`, score them with `in_use.head` (one head for the
    whole batch), the feedback adapter in force (`adapters`) and `watches` (each frame: the watches
    of its stream), and build their Predictions. An engine failure fails every frame of the batch
    (they go to the DLQ with the reason) and the worker goes on."""
    works = batch.items + batch.stale
    result = BatchResult(works=works, stale=list(batch.stale), started_at_ms=now_ms())
    good = [w for w in batch.items if w.error is None]
    result.failed = [w for w in batch.items if w.error is not None]
    if not good:
        return result
    start = time.perf_counter()
    try:
        # N × [S, S, 3] -> [N, S, S, 3]
        images = stack_pixels([w.pixels for w in good if w.pixels is not None])
        for w in works:
            w.pixels = None  # the batch array holds them now; freed after the engine
        emb = engine.embed(images)  # [N, S, S, 3] -> [N, D]
        del images
        if emb.shape[0] != len(good):
            raise HarclipError(f"engine returned {emb.shape[0]} rows for {len(good)} images")
        applied = adapters.fitted(in_use) if adapters is not None else None
        streams = [w.frame.stream_id if w.frame is not None else "" for w in good]
        top, models = score_top_k(in_use, applied, emb, streams, top_k)  # [N, D] -> N × k
        scores = watches.score(emb, streams) if watches else [{}] * len(good)  # N × {name: p}
    except Exception as e:  # the whole batch follows the error policy, loudly
        log.error("inference failed for a batch of %d frames: %s", len(good), e)
        for w in good:
            w.error = f"inference: {e}"
        result.failed.extend(good)
        return result
    result.infer_s = time.perf_counter() - start
    done = now_ms()
    infer_ms = result.infer_s * 1000
    for w, row, model, emb_row, watched in zip(good, top, models, emb, scores, strict=True):
        f = w.frame
        assert f is not None
        pred = Prediction(
            frame_id=f.frame_id,
            stream_id=f.stream_id,
            seq=f.seq,
            captured_at=f.captured_at,
            inferred_at=done,
            label=row[0][0],
            score=row[0][1],
            top_k=[LabelScore(label=lb, score=sc) for lb, sc in row],
            model=model,
            watches=watched,
            latency_ms=Latency(
                queue=float(max(0, result.started_at_ms - f.captured_at)),
                infer=infer_ms,
                total=float(max(0, done - f.captured_at)),
            ),
        )
        result.predicted.append(Predicted(w, pred, emb_row))
    return result
