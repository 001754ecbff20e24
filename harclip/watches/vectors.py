"""Building the `WatchSet` record: a watch's vectors from its spec (text prompts through the
bundle's text encoder, examples as image embeddings) and the set's versions.

A watch's positive vector is the re-normalised mean of the unit vectors of its prompts and
examples; each negative prompt (or `DEFAULT_NEGATIVES` when it has none) is one unit vector.
The set's version grows with every change (`next_version`: unique across API replicas, the largest
wins); a watch's own version grows by one each time its spec or vectors change.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

from harclip.errors import HarclipError
from harclip.model.head import next_version
from harclip.watches.spec import DEFAULT_NEGATIVES, MAX_WATCHES, Watch, WatchSet, WatchSpec

VECTOR_DECIMALS = 6


class WatchError(HarclipError):
    """A watch that cannot be built or applied; `field` names the spec field at fault."""

    def __init__(self, field: str, message: str, status: int = 422) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.status = status


class TextEmbedder(Protocol):
    """What vectors need of `harclip.model.text.TextEncoder`."""

    context_length: int

    def tokenize(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]: ...

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


def _unit_rows(rows: np.ndarray, field: str) -> np.ndarray:
    """float32 [N, D] -> the same rows scaled to length 1; a zero or non-finite row is refused."""
    rows = np.asarray(rows, dtype=np.float32)
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    bad = np.flatnonzero(~np.isfinite(norms[:, 0]) | (norms[:, 0] == 0))
    if bad.size:
        raise WatchError(f"{field}[{int(bad[0])}]", "has a zero or non-finite embedding")
    return rows / norms  # type: ignore[no-any-return]


def check_prompt_lengths(encoder: TextEmbedder, prompts: Sequence[str], field: str) -> None:
    """Refuse a prompt the text encoder would truncate (it must leave room for <bos>, <eos> and
    one more position: at most `context_length - 3` tokens)."""
    if not prompts:
        return
    _, mask = encoder.tokenize(prompts)
    full = np.flatnonzero(mask.sum(axis=1) >= encoder.context_length)
    if full.size:
        limit = encoder.context_length - 3
        raise WatchError(f"{field}[{int(full[0])}]", f"is longer than {limit} tokens")


def embed_prompts(encoder: TextEmbedder, prompts: Sequence[str], field: str) -> np.ndarray:
    """Prompts -> float32 [N, D] unit vectors (length checked first)."""
    check_prompt_lengths(encoder, prompts, field)
    return _unit_rows(encoder.encode(list(prompts)), field)


def build_watch(
    spec: WatchSpec,
    encoder: TextEmbedder,
    examples: np.ndarray | None = None,
    *,
    embed_dim: int,
    version: int = 1,
) -> Watch:
    """The watch in force for `spec`: `examples` are the embeddings of `spec.examples` (float32
    [E, D], in order, any length: each is normalised), prompts and negatives go through
    `encoder`. `WatchError` naming the field when something does not fit."""
    parts: list[np.ndarray] = []
    if spec.prompts:
        parts.append(embed_prompts(encoder, spec.prompts, "prompts"))
    if examples is not None and len(examples):
        ex = np.asarray(examples, dtype=np.float32)
        if ex.ndim != 2 or ex.shape[1] != embed_dim:
            raise WatchError("examples", f"embeddings are {ex.shape}, the model makes {embed_dim}")
        parts.append(_unit_rows(ex, "examples"))
    if not parts:
        raise WatchError("prompts", "a watch needs at least one prompt or example")
    units = np.concatenate(parts)  # [P + E, D]
    if units.shape[1] != embed_dim:
        raise WatchError("prompts", f"the text encoder makes {units.shape[1]}-dim vectors, "
                         f"the model {embed_dim}")  # fmt: skip
    positive = _unit_rows(units.mean(axis=0, keepdims=True), "prompts")[0]
    negatives = embed_prompts(encoder, spec.negatives or DEFAULT_NEGATIVES, "negatives")
    return Watch(
        spec=spec,
        version=version,
        positive=_rounded(positive),
        negatives=[_rounded(row) for row in negatives],
    )


def _rounded(vector: np.ndarray) -> list[float]:
    """A unit vector as JSON-friendly floats: VECTOR_DECIMALS decimals (about 10 bytes each in
    the control record instead of ~20; the cosine moves by less than 1e-5)."""
    return [round(x, VECTOR_DECIMALS) for x in vector.tolist()]


def empty_set(embed_dim: int) -> WatchSet:
    """No watch in force (version 0)."""
    return WatchSet(version=0, embed_dim=embed_dim, watches=[])


def with_watch(current: WatchSet, watch: Watch) -> WatchSet:
    """`current` with `watch` added or replacing the watch of its name (then its version is the
    old one + 1, or the old one if nothing changed: the set itself is returned unchanged)."""
    if len(watch.positive) != current.embed_dim:
        raise WatchError("examples", f"the watch is {len(watch.positive)}-dim, the set "
                         f"{current.embed_dim}")  # fmt: skip
    name = watch.spec.name
    old = next((w for w in current.watches if w.spec.name == name), None)
    if old is not None:
        if (old.spec, old.positive, old.negatives) == (watch.spec, watch.positive, watch.negatives):
            return current
        watch = watch.model_copy(update={"version": old.version + 1})
    elif len(current.watches) >= MAX_WATCHES:
        raise WatchError("name", f"at most {MAX_WATCHES} watches are in force; remove one first")
    watches = [watch if w.spec.name == name else w for w in current.watches]
    if old is None:
        watches.append(watch)
    return WatchSet(
        version=next_version(current.version), embed_dim=current.embed_dim, watches=watches
    )


def without_watch(current: WatchSet, name: str) -> WatchSet:
    """`current` less the watch `name`; `WatchError` (404) if there is none of that name."""
    watches = [w for w in current.watches if w.spec.name != name]
    if len(watches) == len(current.watches):
        raise WatchError("name", f"no watch named {name!r}", status=404)
    return WatchSet(
        version=next_version(current.version), embed_dim=current.embed_dim, watches=watches
    )
