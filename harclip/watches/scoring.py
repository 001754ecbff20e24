"""Scoring a batch of embeddings against every watch in force (the worker, after the head).

One `WatchScorer` per `WatchSet`: every positive and (de-duplicated) negative vector stacked in
one matrix, so a batch costs one matrix product per distinct window length (usually one); the
softmax over [positive, negatives] of each watch is done for all watches at once on a padded
[B, W, 1 + K] array. Which watches apply to a stream (its globs) is computed once per stream id
and cached. Windows (`window` > 1) mean-pool the last frames of the stream, kept in
`StreamWindows`, which outlives a scorer (a new set keeps the streams' recent frames) and is
bounded (least recently seen streams are forgotten).

The products run on one BLAS thread (threadpoolctl, when installed): they are small, and
OpenBLAS' threads, spinning beside the engine's on a busy machine, made them ~100 times slower.
"""

from __future__ import annotations

import contextlib
import fnmatch
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from harclip.watches.spec import SCORE_FLOOR, WatchSet

MAX_STREAMS = 1024  # streams whose recent frames are kept for windows (least recent forgotten)
MAX_CACHED_STREAMS = 10_000  # stream ids whose matching watches are cached

_blas: list[Any] = []  # the threadpoolctl controller, made on first use ([None] if absent)


@contextlib.contextmanager
def _one_blas_thread() -> Iterator[None]:
    if not _blas:
        try:
            from threadpoolctl import ThreadpoolController

            _blas.append(ThreadpoolController())
        except ImportError:
            _blas.append(None)
    if _blas[0] is None:
        yield
        return
    with _blas[0].limit(limits=1, user_api="blas"):
        yield


class _Ring:
    """The last `capacity` embeddings of one stream (float32 [capacity, D], circular)."""

    __slots__ = ("buf", "count", "pos")

    def __init__(self, capacity: int, dim: int) -> None:
        self.buf = np.zeros((capacity, dim), dtype=np.float32)
        self.count = 0
        self.pos = 0

    def grow(self, capacity: int) -> None:
        recent = self.last(self.count)  # oldest first
        self.buf = np.zeros((capacity, self.buf.shape[1]), dtype=np.float32)
        self.buf[: len(recent)] = recent
        self.count = self.pos = len(recent)
        self.pos %= capacity

    def push(self, emb: np.ndarray) -> None:
        cap = self.buf.shape[0]
        self.buf[self.pos] = emb
        self.pos = (self.pos + 1) % cap
        self.count = min(self.count + 1, cap)

    def last(self, n: int) -> np.ndarray:
        """The last min(n, count) rows, oldest first."""
        n = min(n, self.count)
        return self.buf[(self.pos - n + np.arange(n)) % self.buf.shape[0]]


class StreamWindows:
    """Recent embeddings per stream for windowed watches; at most `max_streams` streams (the
    least recently pushed is forgotten). Used from one thread (the worker's engine thread)."""

    def __init__(self, dim: int, max_streams: int = MAX_STREAMS) -> None:
        self.dim = dim
        self._max = max_streams
        self._rings: OrderedDict[str, _Ring] = OrderedDict()

    def __len__(self) -> int:
        return len(self._rings)

    def push(self, stream_id: str, emb: np.ndarray, capacity: int) -> None:
        ring = self._rings.get(stream_id)
        if ring is None:
            ring = self._rings[stream_id] = _Ring(capacity, self.dim)
            if len(self._rings) > self._max:
                self._rings.popitem(last=False)
        else:
            self._rings.move_to_end(stream_id)
            if ring.buf.shape[0] < capacity:
                ring.grow(capacity)
        ring.push(emb)

    def pooled(self, stream_id: str, window: int) -> np.ndarray:
        """float32 [D]: the renormalised mean of the stream's last `window` embeddings."""
        mean = self._rings[stream_id].last(window).mean(axis=0)
        norm = float(np.linalg.norm(mean))
        return mean / norm if norm > 0 else mean  # type: ignore[no-any-return]


@dataclass(frozen=True, slots=True)
class _Group:
    """The watches of one window length: their indices, the columns they read and the
    [positive, negatives...] column of each (padded with a column masked out)."""

    window: int
    watches: np.ndarray  # int [G]: indices into the set's watches
    vectors: np.ndarray  # float32 [D, M_g]: the columns this group reads
    index: np.ndarray  # int [G, 1 + K] into `vectors`' columns
    pad: np.ndarray  # bool [G, 1 + K]: True where padding


@dataclass(frozen=True, slots=True)
class _StreamPlan:
    applies: np.ndarray  # bool [W]
    windows: tuple[int, ...]  # window lengths > 1 of the watches that apply
    capacity: int  # frames to keep (the largest of `windows`, 1 if none)


class WatchScorer:
    """`score(emb, stream_ids)` -> one `{watch name: score}` per row, for the watches of that
    row's stream, scores under `SCORE_FLOOR` left out."""

    def __init__(
        self, watches: WatchSet, logit_scale: float, windows: StreamWindows | None = None
    ) -> None:
        self.watch_set = watches
        self.version = watches.version
        self._scale = np.float32(logit_scale)
        self._names = [w.spec.name for w in watches.watches]
        self._globs = [tuple(w.spec.streams) for w in watches.watches]
        self._window = np.array([w.spec.window for w in watches.watches], dtype=np.int64)
        keep = windows is not None and windows.dim == watches.embed_dim
        self.windows = windows if keep and windows is not None else StreamWindows(watches.embed_dim)
        self._groups = self._build_groups()
        self._plans: OrderedDict[str, _StreamPlan] = OrderedDict()

    def __len__(self) -> int:
        return len(self._names)

    def _build_groups(self) -> list[_Group]:
        ws = self.watch_set.watches
        if not ws:
            return []
        columns: dict[tuple[float, ...], int] = {}  # de-duplicates shared negatives
        rows: list[list[int]] = []
        for w in ws:
            row = []
            for vec in (w.positive, *w.negatives):
                row.append(columns.setdefault(tuple(vec), len(columns)))
            rows.append(row)
        every = np.array(list(columns), dtype=np.float32).T  # [D, M]
        width = max(len(r) for r in rows)
        groups = []
        for window in sorted(set(self._window.tolist())):
            members = np.flatnonzero(self._window == window)
            used = sorted({c for i in members for c in rows[i]})
            local = {c: j for j, c in enumerate(used)}
            index = np.zeros((len(members), width), dtype=np.int64)
            pad = np.ones((len(members), width), dtype=bool)
            for g, i in enumerate(members):
                index[g, : len(rows[i])] = [local[c] for c in rows[i]]
                pad[g, : len(rows[i])] = False
            vectors = np.ascontiguousarray(every[:, used])
            groups.append(_Group(int(window), members, vectors, index, pad))
        return groups

    def _plan(self, stream_id: str) -> _StreamPlan:
        plan = self._plans.get(stream_id)
        if plan is not None:
            return plan
        applies = np.array(
            [any(fnmatch.fnmatchcase(stream_id, g) for g in globs) for globs in self._globs],
            dtype=bool,
        )
        windows = tuple(sorted({int(w) for w in self._window[applies] if w > 1}))
        plan = _StreamPlan(applies, windows, max(windows, default=1))
        self._plans[stream_id] = plan
        if len(self._plans) > MAX_CACHED_STREAMS:
            self._plans.popitem(last=False)
        return plan

    def applies(self, stream_id: str) -> list[str]:
        """The names of the watches of `stream_id`."""
        return [n for n, a in zip(self._names, self._plan(stream_id).applies, strict=True) if a]

    def score(self, emb: np.ndarray, stream_ids: Sequence[str]) -> list[dict[str, float]]:
        """float32 [B, D] L2-normalised embeddings of frames of `stream_ids` (in stream order)
        -> B dicts. Updates the streams' windows."""
        if not self._names:
            return [{} for _ in stream_ids]
        plans = [self._plan(s) for s in stream_ids]
        mask = np.stack([p.applies for p in plans])  # [B, W]
        if not mask.any():
            return [{} for _ in stream_ids]
        pooled = self._pool(emb, stream_ids, plans)
        scores = np.zeros(mask.shape, dtype=np.float32)  # [B, W]
        with _one_blas_thread():
            for g in self._groups:
                x = pooled.get(g.window, emb)
                sims = x @ g.vectors  # [B, D] @ [D, M_g] -> [B, M_g]
                logits = sims[:, g.index] * self._scale  # [B, G, 1 + K]
                logits[:, g.pad] = -np.inf
                top = logits.max(axis=2, keepdims=True)
                exp = np.exp(logits - top)
                scores[:, g.watches] = exp[:, :, 0] / exp.sum(axis=2)
        rows, cols = np.nonzero(mask & (scores >= SCORE_FLOOR))  # row-major: rows ascending
        values = scores[rows, cols].tolist()
        names = self._names
        out: list[dict[str, float]] = [{} for _ in stream_ids]
        for r, c, v in zip(rows.tolist(), cols.tolist(), values, strict=True):
            out[r][names[c]] = v
        return out

    def _pool(
        self, emb: np.ndarray, stream_ids: Sequence[str], plans: list[_StreamPlan]
    ) -> dict[int, np.ndarray]:
        """{window: float32 [B, D]}: each row the pooled embedding of its stream over `window`
        frames (rows of streams without such a watch are left as they are: masked out)."""
        pooled: dict[int, np.ndarray] = {}
        for b, (sid, plan) in enumerate(zip(stream_ids, plans, strict=True)):
            if plan.capacity <= 1:
                continue
            self.windows.push(sid, emb[b], plan.capacity)
            for w in plan.windows:
                if w not in pooled:
                    pooled[w] = emb.copy()
                pooled[w][b] = self.windows.pooled(sid, w)
        return pooled
