"""Which frames keep their embedding in Elasticsearch (keyframes) and which keyframe stands for
each of the others. Per stream, a frame is a keyframe when it is the stream's first (on this
worker), its top-1 label differs from the previous frame's, its embedding moved more than
`distance` (1 - cosine) from the last keyframe's, or `every_ms` of capture time passed since the
last keyframe. Every prediction is still indexed; only keyframes carry the 2 KB vector.

Pure and per worker: a stream's partition belongs to one worker, and a rebalance or restart only
starts the stream again with a keyframe.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(slots=True)
class _Stream:
    keyframe_id: str
    keyframe_at: int  # captured_at, ms since epoch
    embedding: np.ndarray  # float32 [D], L2-normalised
    label: str


class KeyframePolicy:
    """`decide(...)` per prediction, in capture order per stream; `enabled=False`: every frame
    is a keyframe."""

    def __init__(self, distance: float, every_s: float, *, enabled: bool = True) -> None:
        self.distance = distance
        self.every_ms = every_s * 1000
        self.enabled = enabled
        self._streams: dict[str, _Stream] = {}

    def decide(
        self, stream_id: str, frame_id: str, captured_at: int, label: str, embedding: np.ndarray
    ) -> str:
        """The id of the keyframe that stands for this frame (its own id: it is a keyframe)."""
        last = self._streams.get(stream_id)
        if last is not None and self.enabled and captured_at >= last.keyframe_at:
            moved = 1.0 - float(np.dot(last.embedding, embedding))
            due = captured_at - last.keyframe_at >= self.every_ms
            if not due and moved <= self.distance and label == last.label:
                last.label = label
                return last.keyframe_id
        self._streams[stream_id] = _Stream(frame_id, captured_at, embedding, label)
        return frame_id

    def forget(self, stream_ids: set[str] | None = None) -> None:
        """Drop the state of `stream_ids` (None: all), e.g. after partitions moved away."""
        if stream_ids is None:
            self._streams.clear()
        else:
            for sid in stream_ids:
                self._streams.pop(sid, None)
