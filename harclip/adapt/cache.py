"""The feedback cache adapter (Tip-Adapter style) and its record on `harclip.control`.

For an L2-normalised embedding x of a stream in scope s (the first scope whose glob matches):

    logits = head.logits(x) + scale · alpha · exp(-beta · (1 - K_s·x)) @ V_s

K_s: the scope's keys (feedback embeddings, [M_s, D]); V_s: their one-hot labels ([M_s, L], by
name); scale: the head's logit scale, so alpha is in cosine units whatever the head's temperature.
Labels the head lacks (learnt from examples alone) are appended after the head's labels; their
zero-shot logit is the row's mean head logit, so only the cache can lift them. A stream that no
scope matches gets the head alone.
"""

from __future__ import annotations

import base64
import binascii
import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from harclip.errors import MessageError
from harclip.messages import now_ms
from harclip.model.head import Head

ADAPTER_SCHEMA = "harclip.adapter/1"
MAX_SCOPES = 64
MAX_LABELS = 1000


@dataclass(frozen=True)
class Adapter:
    """One built adapter: keys [M, D] (float32, L2-normalised), `values` [M] (indices into
    `labels`), `scope_of` [M] (indices into `scopes`: stream globs, most specific first)."""

    version: int
    scopes: tuple[str, ...]
    labels: tuple[str, ...]
    keys: np.ndarray  # float32 [M, D]
    values: np.ndarray  # int32 [M]
    scope_of: np.ndarray  # int32 [M]
    alpha: float
    beta: float
    built_at: int = field(default_factory=now_ms)  # ms since epoch
    feedback_count: int = 0  # labelled items the candidate was built and scored on
    cv_score: float | None = None  # its k-fold held-out accuracy
    model: str = ""  # "<name>/<version>" of the model whose embeddings the keys are
    sources: tuple[str, ...] = ()  # feedback_id of each key (the gate leaves an item's own out)

    def __post_init__(self) -> None:
        _check(self)

    @property
    def embed_dim(self) -> int:
        return int(self.keys.shape[1])

    @property
    def size(self) -> int:
        return int(self.keys.shape[0])

    def scope_index(self, stream_id: str) -> int:
        """The scope `stream_id` uses: the first glob that matches it, or -1 (head alone)."""
        for i, pattern in enumerate(self.scopes):
            if fnmatch.fnmatchcase(stream_id, pattern):
                return i
        return -1

    def counts(self) -> dict[str, int]:
        """Cache items per label (all scopes)."""
        n = np.bincount(self.values, minlength=len(self.labels))
        return {lb: int(c) for lb, c in zip(self.labels, n, strict=True)}

    # --- harclip.control ----------------------------------------------------------------------

    def to_doc(self) -> dict[str, Any]:
        """JSON-ready record; keys as base64 float16 little-endian (half the bytes of float32)."""
        return {
            "schema": ADAPTER_SCHEMA,
            "version": self.version,
            "scopes": list(self.scopes),
            "labels": list(self.labels),
            "embed_dim": self.embed_dim,
            "keys": base64.b64encode(self.keys.astype("<f2").tobytes()).decode(),
            "values": self.values.tolist(),
            "scope_of": self.scope_of.tolist(),
            "alpha": self.alpha,
            "beta": self.beta,
            "built_at": self.built_at,
            "feedback_count": self.feedback_count,
            "cv_score": self.cv_score,
            "model": self.model,
            "sources": list(self.sources),
        }

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_doc())

    @classmethod
    def from_doc(cls, doc: Any) -> Adapter:
        """A record written by `to_doc`; `MessageError` naming the field that is wrong."""
        if not isinstance(doc, dict):
            raise MessageError("an adapter record must be a JSON object")
        if doc.get("schema") != ADAPTER_SCHEMA:
            raise MessageError(
                f"adapter schema must be {ADAPTER_SCHEMA}, got {doc.get('schema')!r}"
            )
        try:
            dim = _int(doc, "embed_dim", 1)
            raw = base64.b64decode(_get(doc, "keys", str), validate=True)
            if len(raw) % (2 * dim):
                raise MessageError(f"adapter keys: {len(raw)} bytes is not a multiple of {2 * dim}")
            keys = np.frombuffer(raw, "<f2").astype(np.float32).reshape(-1, dim)
            return cls(
                version=_int(doc, "version", 1),
                scopes=_strings(doc, "scopes"),
                labels=_strings(doc, "labels"),
                keys=keys,
                values=_ints(doc, "values"),
                scope_of=_ints(doc, "scope_of"),
                alpha=_num(doc, "alpha"),
                beta=_num(doc, "beta"),
                built_at=_int(doc, "built_at", 0),
                feedback_count=_int(doc, "feedback_count", 0),
                cv_score=None if doc.get("cv_score") is None else _num(doc, "cv_score"),
                model=_get(doc, "model", str) if "model" in doc else "",
                sources=_strings(doc, "sources") if "sources" in doc else (),
            )
        except binascii.Error as e:
            raise MessageError(f"adapter keys are not base64: {e}") from None
        except ValueError as e:  # numpy shapes
            raise MessageError(f"adapter record: {e}") from None

    @classmethod
    def from_json(cls, raw: bytes | str) -> Adapter:
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError as e:
            raise MessageError(f"adapter record is not JSON: {e}") from None
        return cls.from_doc(doc)


# --- applying it ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Applied:
    """The adapter fitted to one head: output labels (the head's, then new ones) and, per cache
    item, the output column of its label. Built once per (adapter, head) pair."""

    adapter: Adapter
    head: Head
    labels: tuple[str, ...]  # output labels
    columns: np.ndarray  # int64 [M]: output column of each cache item
    onehot: np.ndarray  # float32 [M, C']: the values, one-hot over the output labels

    @classmethod
    def fit(cls, adapter: Adapter, head: Head) -> Applied:
        out = list(head.labels)
        where = {lb: i for i, lb in enumerate(out)}
        for lb in adapter.labels:
            if lb not in where:
                where[lb] = len(out)
                out.append(lb)
        label_col = np.array([where[lb] for lb in adapter.labels], dtype=np.int64)
        columns = label_col[adapter.values]
        onehot = np.zeros((adapter.size, len(out)), np.float32)  # [M, C']
        onehot[np.arange(adapter.size), columns] = 1.0
        return cls(adapter, head, tuple(out), columns, onehot)

    def logits(
        self, emb: np.ndarray, scope: np.ndarray, *, exclude: np.ndarray | None = None
    ) -> np.ndarray:
        """float32 [N, D] embeddings and each row's scope index [N] -> logits [N, C'] over
        `labels`. Rows of scope -1 get the head's logits (and -inf for new labels).
        `exclude` (bool [N, M]) leaves cache items out per row: scoring an adapter on the
        feedback it was built from, leave-one-out."""
        a, h = self.adapter, self.head
        n, c = emb.shape[0], len(self.labels)
        base = h.logits(emb)  # [N, D] -> [N, C]
        out = np.empty((n, c), np.float32)
        out[:, : base.shape[1]] = base
        out[:, base.shape[1] :] = base.mean(axis=1, keepdims=True)
        sims = emb.astype(np.float32, copy=False) @ a.keys.T  # [N, D] x [D, M] -> [N, M]
        affinity = np.exp(-a.beta * (1.0 - sims))
        affinity *= scope[:, None] == a.scope_of[None, :]
        if exclude is not None:
            affinity *= ~exclude
        out += np.float32(h.logit_scale * a.alpha) * (affinity @ self.onehot)  # [N,M]x[M,C']
        outside = scope < 0
        if outside.any():
            out[outside, base.shape[1] :] = -np.inf
        return out

    def top_k(self, emb: np.ndarray, scope: np.ndarray, k: int) -> list[list[tuple[str, float]]]:
        """Per row, the k most probable (label, probability) over `labels`, best first."""
        z = self.logits(emb, scope)
        z = z - z.max(axis=1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=1, keepdims=True)
        k = max(1, min(k, len(self.labels)))
        idx = np.argsort(-p, axis=1, kind="stable")[:, :k]
        return [
            [(self.labels[j], float(row[j])) for j in cols]
            for row, cols in zip(p, idx, strict=True)
        ]


def scopes_of(adapter: Adapter, streams: Sequence[str]) -> np.ndarray:
    """Each stream's scope index (-1: none), int64 [N]; one glob match per distinct stream."""
    seen: dict[str, int] = {}
    out = np.empty(len(streams), np.int64)
    for i, s in enumerate(streams):
        j = seen.get(s)
        if j is None:
            j = seen[s] = adapter.scope_index(s)
        out[i] = j
    return out


# --- checks -----------------------------------------------------------------------------------


def _check(a: Adapter) -> None:
    if a.keys.ndim != 2 or a.keys.shape[1] < 1:
        raise MessageError(f"adapter keys must be [M, D], got shape {a.keys.shape}")
    m = a.keys.shape[0]
    if not 1 <= len(a.scopes) <= MAX_SCOPES:
        raise MessageError(f"an adapter has 1 to {MAX_SCOPES} scopes, got {len(a.scopes)}")
    if not np.isfinite(a.keys).all():
        raise MessageError("adapter keys must be finite")
    for name, arr, n in (
        ("values", a.values, len(a.labels)),
        ("scope_of", a.scope_of, len(a.scopes)),
    ):
        if arr.shape != (m,):  # fmt: skip
            raise MessageError(f"adapter {name} must have one entry per key ({m}), got {arr.shape}")
        if m and (arr.min() < 0 or arr.max() >= n):
            raise MessageError(f"adapter {name} must be indices below {n}")
    if a.sources and len(a.sources) != m:
        raise MessageError(f"adapter sources must name one feedback item per key ({m})")
    if len(a.labels) > MAX_LABELS or len(set(a.labels)) != len(a.labels):
        raise MessageError(f"adapter labels must be distinct, at most {MAX_LABELS}")
    if any(not lb or len(lb) > 64 or not lb.isprintable() for lb in a.labels):
        raise MessageError("adapter labels must be 1 to 64 printable characters")
    if any(not s or len(s) > 200 for s in a.scopes):
        raise MessageError("adapter scopes must be globs of 1 to 200 characters")
    if not (a.alpha > 0 and np.isfinite(a.alpha)) or not (a.beta > 0 and np.isfinite(a.beta)):
        raise MessageError(f"adapter alpha and beta must be positive, got {a.alpha}, {a.beta}")
    if a.version < 1:
        raise MessageError(f"adapter version must be positive, got {a.version}")


def _get(doc: dict[str, Any], key: str, kind: type) -> Any:
    v = doc.get(key)
    if not isinstance(v, kind) or isinstance(v, bool):
        raise MessageError(f"adapter {key} must be a {kind.__name__}, got {type(v).__name__}")
    return v


def _int(doc: dict[str, Any], key: str, minimum: int) -> int:
    v = _get(doc, key, int)
    if v < minimum:
        raise MessageError(f"adapter {key} must be at least {minimum}, got {v}")
    return int(v)


def _num(doc: dict[str, Any], key: str) -> float:
    v = doc.get(key)
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise MessageError(f"adapter {key} must be a number, got {type(v).__name__}")
    return float(v)


def _strings(doc: dict[str, Any], key: str) -> tuple[str, ...]:
    v = _get(doc, key, list)
    if not all(isinstance(x, str) for x in v):
        raise MessageError(f"adapter {key} must be a list of strings")
    return tuple(v)


def _ints(doc: dict[str, Any], key: str) -> np.ndarray:
    v = _get(doc, key, list)
    if not all(isinstance(x, int) and not isinstance(x, bool) for x in v):
        raise MessageError(f"adapter {key} must be a list of integers")
    return np.asarray(v, dtype=np.int32).reshape(-1)
