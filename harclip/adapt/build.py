"""Building a cache adapter from feedback: the usable items, the bounded cache, alpha/beta by
k-fold cross-validation over a small grid, and the gate's score of a champion on the same items.

Pure numpy over `Item`s; reading Elasticsearch and publishing live in `harclip.adapt.store`.
"""

from __future__ import annotations

import fnmatch
import zlib
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from harclip.adapt.cache import Adapter, Applied
from harclip.config.adapt import AdaptSettings
from harclip.errors import HarclipError
from harclip.messages.feedback import Feedback
from harclip.model.head import Head


class NotEnoughFeedback(HarclipError):
    """Too few usable labelled feedback items to build (or score) a candidate."""


@dataclass(frozen=True, slots=True)
class Item:
    """One usable feedback item: a labelled, L2-normalised embedding of a stream's frame."""

    feedback_id: str
    stream_id: str
    label: str
    given_at: int  # ms since epoch
    embedding: np.ndarray  # float32 [D]


@dataclass
class Usable:
    """Feedback turned into items, and how many documents were left out and why."""

    items: list[Item] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> count

    def skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1


def usable_items(docs: Iterable[Feedback], embed_dim: int, model: str | None) -> Usable:
    """One item per judged frame (the latest verdict wins; earlier ones are counted as
    `superseded`). Left out: "none of these" (`none`: no label to point at), no embedding
    (`no_embedding`), an embedding of another size (`embed_dim`) or of another model than
    `model` ("name/version"; `other_model`): the document's `embedding_model`, else its
    `model`."""
    latest: dict[str, Feedback] = {}
    out = Usable()
    for d in docs:
        key = d.frame_id
        prev = latest.get(key)
        if prev is None or (d.given_at, d.feedback_id) > (prev.given_at, prev.feedback_id):
            if prev is not None:
                out.skip("superseded")
            latest[key] = d
        else:
            out.skip("superseded")
    for d in latest.values():
        if d.label is None:
            out.skip("none")
        elif d.embedding is None:
            out.skip("no_embedding")
        elif len(d.embedding) != embed_dim:
            out.skip("embed_dim")
        elif model is not None and _space_of(d) not in (None, model):
            out.skip("other_model")
        else:
            e = np.asarray(d.embedding, dtype=np.float32)
            n = float(np.linalg.norm(e))
            if not np.isfinite(n) or n == 0:
                out.skip("bad_embedding")
                continue
            out.items.append(Item(d.feedback_id, d.stream_id, d.label, d.given_at, e / n))
    out.items.sort(key=lambda i: (i.given_at, i.feedback_id))
    return out


def _space_of(d: Feedback) -> str | None:
    """The model ("name/version") whose space the embedding is in: the one that computed it,
    else (older documents) the one that made the judged prediction."""
    if d.embedding_model is not None:
        return d.embedding_model
    return None if d.model is None else f"{d.model.name}/{d.model.version}"


def in_scopes(items: Sequence[Item], scopes: Sequence[str]) -> list[Item]:
    """The items whose stream some scope covers (the others cannot be served by the adapter)."""
    return [i for i in items if any(fnmatch.fnmatchcase(i.stream_id, p) for p in scopes)]


@dataclass(frozen=True)
class Cache:
    """The bounded cache of some items: keys [M, D], label index [M], scope index [M]."""

    labels: tuple[str, ...]
    keys: np.ndarray
    values: np.ndarray
    scope_of: np.ndarray
    sources: tuple[str, ...]  # feedback_id of each key


def make_cache(
    items: Sequence[Item], scopes: Sequence[str], per_label_cap: int, max_keys: int, dim: int
) -> Cache:
    """Per scope (an item goes into every scope whose glob matches its stream) and label, the
    newest `per_label_cap` items; when that is more than `max_keys` in all, the per-label cap is
    lowered until it fits (and, past one per label, the newest groups win)."""
    groups: dict[tuple[int, str], list[Item]] = defaultdict(list)
    for it in sorted(items, key=lambda i: (i.given_at, i.feedback_id), reverse=True):
        for s, pattern in enumerate(scopes):
            if fnmatch.fnmatchcase(it.stream_id, pattern):
                groups[(s, it.label)].append(it)
    cap = per_label_cap
    while cap > 1 and sum(min(len(g), cap) for g in groups.values()) > max_keys:
        cap -= 1
    kept = [(s, it) for (s, _), g in groups.items() for it in g[:cap]]
    if len(kept) > max_keys:
        kept.sort(key=lambda p: (p[1].given_at, p[1].feedback_id), reverse=True)
        kept = kept[:max_keys]
    labels = tuple(sorted({it.label for _, it in kept}))
    index = {lb: i for i, lb in enumerate(labels)}
    keys = np.stack([it.embedding for _, it in kept]) if kept else np.zeros((0, dim), np.float32)
    keys = keys.astype(np.float16).astype(np.float32)  # as the control record carries them
    return Cache(
        labels,
        keys,
        np.array([index[it.label] for _, it in kept], np.int32),
        np.array([s for s, _ in kept], np.int32),
        tuple(it.feedback_id for _, it in kept),
    )


def scope_indices(items: Sequence[Item], scopes: Sequence[str]) -> np.ndarray:
    """Each item's scope: the first glob matching its stream (-1: none), int64 [N]."""
    out = np.full(len(items), -1, np.int64)
    for n, it in enumerate(items):
        for s, pattern in enumerate(scopes):
            if fnmatch.fnmatchcase(it.stream_id, pattern):
                out[n] = s
                break
    return out


def fold_of(feedback_id: str, folds: int) -> int:
    """The item's fold: stable across runs (a hash of its id), so scores are comparable."""
    return zlib.crc32(feedback_id.encode()) % folds


@dataclass(frozen=True)
class CvResult:
    """Held-out accuracy per grid point [len(alphas), len(betas)], and the best point."""

    alphas: tuple[float, ...]
    betas: tuple[float, ...]
    accuracy: np.ndarray
    scored: int  # held-out predictions made (every item once)

    @property
    def best(self) -> tuple[float, float, float]:
        """(alpha, beta, accuracy); ties go to the smaller alpha, then the smaller beta."""
        i, j = np.unravel_index(int(np.argmax(self.accuracy)), self.accuracy.shape)
        return self.alphas[i], self.betas[j], float(self.accuracy[i, j])


def cross_validate(
    items: Sequence[Item], head: Head, scopes: Sequence[str], s: AdaptSettings
) -> CvResult:
    """k-fold: for each fold, a cache of the other folds (capped as in production) predicts
    the fold's items at every (alpha, beta) of the grid; accuracy pools all folds."""
    if len(items) < s.min_items:
        raise NotEnoughFeedback(
            f"{len(items)} usable labelled feedback items, {s.min_items} needed"
        )
    x = np.stack([it.embedding for it in items])  # [N, D]
    universe = list(head.labels) + sorted({it.label for it in items} - set(head.labels))
    col = {lb: i for i, lb in enumerate(universe)}
    truth = np.array([col[it.label] for it in items])
    base = _extended(head, x, len(universe))  # [N, U]
    scope = scope_indices(items, scopes)
    fold = np.array([fold_of(it.feedback_id, s.folds) for it in items])
    correct = np.zeros((len(s.alphas), len(s.betas)))
    scored = 0
    for f in range(s.folds):
        test = np.flatnonzero(fold == f)
        train = [items[int(i)] for i in np.flatnonzero(fold != f)]
        if not len(test):
            continue
        scored += len(test)
        cache = make_cache(train, scopes, s.per_label_cap, s.max_keys, x.shape[1])
        onehot = np.zeros((len(cache.values), len(universe)), np.float32)  # [M, U]
        onehot[np.arange(len(cache.values)), [col[cache.labels[v]] for v in cache.values]] = 1
        sims = x[test] @ cache.keys.T  # [n, D] x [D, M] -> [n, M]
        same = scope[test][:, None] == cache.scope_of[None, :]
        for j, beta in enumerate(s.betas):
            votes = (np.exp(-beta * (1.0 - sims)) * same) @ onehot  # [n, U]
            for i, alpha in enumerate(s.alphas):
                z = base[test] + np.float32(head.logit_scale * alpha) * votes
                correct[i, j] += int((z.argmax(axis=1) == truth[test]).sum())
    return CvResult(tuple(s.alphas), tuple(s.betas), correct / max(1, scored), scored)


def build_candidate(
    items: Sequence[Item],
    head: Head,
    scopes: Sequence[str],
    s: AdaptSettings,
    *,
    version: int,
    model: str,
) -> Adapter:
    """The candidate: alpha/beta from `cross_validate`, the cache from every item (capped)."""
    items = in_scopes(items, scopes)
    cv = cross_validate(items, head, scopes, s)
    alpha, beta, score = cv.best
    cache = make_cache(items, scopes, s.per_label_cap, s.max_keys, head.embed_dim)
    return Adapter(
        version=version,
        scopes=tuple(scopes),
        labels=cache.labels,
        keys=cache.keys,
        values=cache.values,
        scope_of=cache.scope_of,
        alpha=alpha,
        beta=beta,
        feedback_count=len(items),
        cv_score=score,
        model=model,
        sources=cache.sources,
    )


def champion_score(champion: Adapter | None, items: Sequence[Item], head: Head) -> float:
    """The accuracy the adapter in force (None: the head alone) gets on `items`, each scored
    without its own cache entry (leave-one-out: it may have been built from them), as the
    candidate's k-fold scores each item without it."""
    if not items:
        return 0.0
    x = np.stack([it.embedding for it in items])
    if champion is None:
        labels: Sequence[str] = head.labels
        z = head.logits(x)
    else:
        applied = Applied.fit(champion, head)
        labels = applied.labels
        if champion.sources:
            ids = np.array([it.feedback_id for it in items])
            own = ids[:, None] == np.array(champion.sources)[None, :]  # [N, M]
        else:  # no sources recorded: leave identical embeddings out
            own = (x @ champion.keys.T) > 1.0 - 1e-3
        z = applied.logits(x, scope_indices(items, champion.scopes), exclude=own)
    best = [labels[i] for i in z.argmax(axis=1)]
    hits = sum(b == it.label for b, it in zip(best, items, strict=True))
    return float(hits) / len(items)


def _extended(head: Head, x: np.ndarray, width: int) -> np.ndarray:
    """Head logits [N, C] widened to [N, width]: new labels get the row's mean head logit."""
    base = head.logits(x)
    out = np.empty((x.shape[0], width), np.float32)
    out[:, : base.shape[1]] = base
    out[:, base.shape[1] :] = base.mean(axis=1, keepdims=True)
    return out
