"""The classification head over image embeddings: `logits = logit_scale · (emb @ W) + b`.

A zero-shot head (prompt ensembling) and a fine-tuned head share this one format. It is saved in a
bundle as `head.safetensors` + `labels.json` and travels on `harclip.control` as JSON.
"""

from __future__ import annotations

import base64
import binascii
import math
import os
import secrets
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import orjson

from harclip.errors import MessageError, ModelError
from harclip.messages import now_ms

CONTROL_SCHEMA = "harclip.head/1"
_VERSION_RANDOM = 1000  # versions are µs since epoch x 1000 + a random part below this
HeadKind = Literal["zero-shot", "fine-tuned"]
_KINDS: tuple[str, ...] = ("zero-shot", "fine-tuned")


@dataclass(frozen=True)
class Head:
    """Weights [D, C], bias [C] and the logit multiplier (already exp'd) for labels[0..C-1]."""

    labels: tuple[str, ...]
    weight: np.ndarray  # float32 [D, C]
    bias: np.ndarray  # float32 [C]
    logit_scale: float
    version: int
    kind: str = "zero-shot"
    prompts: dict[str, list[str]] = field(default_factory=dict)
    created_at: int = field(default_factory=now_ms)  # ms since epoch, UTC

    def __post_init__(self) -> None:
        _check_head(self)

    @property
    def embed_dim(self) -> int:
        return int(self.weight.shape[0])

    def logits(self, emb: np.ndarray) -> np.ndarray:
        """float32 [N, D] embeddings -> float32 [N, C] logits."""
        if emb.ndim != 2 or emb.shape[1] != self.embed_dim:
            raise ModelError(f"head expects [N, {self.embed_dim}] embeddings, got {emb.shape}")
        out = (emb.astype(np.float32, copy=False) @ self.weight) * np.float32(self.logit_scale)
        return out + self.bias  # type: ignore[no-any-return]

    def probs(self, emb: np.ndarray) -> np.ndarray:
        """Softmax of the logits over the classes: [N, D] -> [N, C], rows sum to 1."""
        z = self.logits(emb)
        z = z - z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)  # type: ignore[no-any-return]

    def top_k(self, emb: np.ndarray, k: int) -> list[list[tuple[str, float]]]:
        """Per row, the k most probable (label, probability), best first."""
        p = self.probs(emb)
        k = max(1, min(k, len(self.labels)))
        idx = np.argsort(-p, axis=1, kind="stable")[:, :k]
        return [
            [(self.labels[j], float(row[j])) for j in cols]
            for row, cols in zip(p, idx, strict=True)
        ]

    # --- files --------------------------------------------------------------------------------

    def save(self, weights_path: Path, labels_path: Path) -> None:
        """Write `head.safetensors` then `labels.json`, each atomically (temp file + rename)."""
        from safetensors.numpy import save

        tensors = {
            "weight": np.ascontiguousarray(self.weight, dtype=np.float32),
            "bias": np.ascontiguousarray(self.bias, dtype=np.float32),
            "logit_scale": np.asarray(self.logit_scale, dtype=np.float32),
        }
        meta = {"version": str(self.version), "labels": str(len(self.labels))}
        atomic_write(weights_path, save(tensors, metadata=meta))
        atomic_write(labels_path, orjson.dumps(self._labels_doc(), option=orjson.OPT_INDENT_2))

    @classmethod
    def load(cls, weights_path: Path, labels_path: Path) -> Head:
        """Read a head written by `save`; `ModelError` naming the file that is missing or bad."""
        from safetensors import SafetensorError
        from safetensors.numpy import load

        try:
            raw = weights_path.read_bytes()
            tensors = load(raw)
        except OSError as e:
            raise ModelError(f"cannot read head weights {weights_path}: {e.strerror}") from None
        except (SafetensorError, ValueError) as e:
            raise ModelError(
                f"head weights {weights_path} are not valid safetensors: {e}"
            ) from None
        missing = {"weight", "bias", "logit_scale"} - tensors.keys()
        if missing:
            raise ModelError(f"head weights {weights_path} lack {', '.join(sorted(missing))}")
        try:
            doc = orjson.loads(labels_path.read_bytes())
        except OSError as e:
            raise ModelError(f"cannot read {labels_path}: {e.strerror}") from None
        except orjson.JSONDecodeError as e:
            raise ModelError(f"{labels_path} is not valid JSON: {e}") from None
        try:
            fields = _labels_fields(doc)
        except MessageError as e:
            raise ModelError(f"{labels_path}: {e}") from None
        try:
            return cls(
                weight=tensors["weight"],
                bias=tensors["bias"],
                logit_scale=float(tensors["logit_scale"]),
                **fields,
            )
        except ModelError as e:
            raise ModelError(f"{weights_path} and {labels_path} do not fit together: {e}") from None

    def _labels_doc(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "kind": self.kind,
            "labels": list(self.labels),
            "prompts": self.prompts,
            "created_at": self.created_at,
        }

    # --- harclip.control ----------------------------------------------------------------------

    def to_control(self) -> bytes:
        """JSON for the `harclip.control` topic (key `head`); weights as base64 float32 LE."""
        doc = self._labels_doc() | {
            "schema": CONTROL_SCHEMA,
            "embed_dim": self.embed_dim,
            "weight": _b64(self.weight),
            "bias": _b64(self.bias),
            "logit_scale": self.logit_scale,
        }
        return orjson.dumps(doc)

    @classmethod
    def from_control(cls, raw: bytes) -> Head:
        """Parse `to_control` output; `MessageError` saying what is wrong with anything else."""
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError as e:
            raise MessageError(f"head message is not JSON: {e}") from None
        if not isinstance(doc, dict):
            raise MessageError("head message must be a JSON object")
        if doc.get("schema") != CONTROL_SCHEMA:
            raise MessageError(
                f"head message schema must be {CONTROL_SCHEMA!r}, got {doc.get('schema')!r}"
            )
        fields = _labels_fields(doc)
        dim = doc.get("embed_dim")
        if not isinstance(dim, int) or isinstance(dim, bool) or dim <= 0:
            raise MessageError("head message embed_dim must be a positive integer")
        n = len(fields["labels"])
        weight = _unb64(doc.get("weight"), "weight", dim * n).reshape(dim, n)
        bias = _unb64(doc.get("bias"), "bias", n)
        scale = doc.get("logit_scale")
        if not isinstance(scale, int | float) or isinstance(scale, bool):
            raise MessageError("head message logit_scale must be a number")
        try:
            return cls(weight=weight, bias=bias, logit_scale=float(scale), **fields)
        except ModelError as e:
            raise MessageError(f"head message: {e}") from None


def next_version(current: int) -> int:
    """A head version newer than `current` and, with overwhelming odds, unique across processes:
    µs since epoch x 1000 + a random part below 1000 (about 1.8e18, an int64), or `current + 1`
    if the clock is behind.

    Two API replicas that publish at the same moment get different versions, and every follower
    keeps the larger: they all end on the same head. A head made later (an export, `harclip labels
    set`, a replica) wins over an older one whatever process made it.
    """
    stamp = time.time_ns() // 1000 * _VERSION_RANDOM + secrets.randbelow(_VERSION_RANDOM)
    return max(stamp, current + 1)


def _check_head(h: Head) -> None:
    err = ModelError
    c = len(h.labels)
    if c == 0:
        raise err("a head needs at least one label")
    if len(set(h.labels)) != c:
        raise err("head labels must be unique")
    if h.weight.ndim != 2 or h.weight.shape[1] != c or h.weight.shape[0] == 0:
        raise err(f"head weight must be [D, {c}], got {list(h.weight.shape)}")
    if h.bias.shape != (c,):
        raise err(f"head bias must be [{c}], got {list(h.bias.shape)}")
    if h.weight.dtype != np.float32 or h.bias.dtype != np.float32:
        raise err("head weight and bias must be float32")
    if not (np.isfinite(h.weight).all() and np.isfinite(h.bias).all()):
        raise err("head weight and bias must be finite")
    if not math.isfinite(h.logit_scale) or h.logit_scale <= 0:
        raise err(f"head logit_scale must be a positive finite number, got {h.logit_scale}")
    if h.kind not in _KINDS:
        raise err(f"head kind must be one of {', '.join(_KINDS)}, got {h.kind!r}")
    if h.version < 0:
        raise err(f"head version must be >= 0, got {h.version}")


def _labels_fields(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The label fields (labels.json or control message), type-checked; `MessageError` if not."""
    labels = doc.get("labels")
    if not isinstance(labels, list) or not all(isinstance(x, str) and x for x in labels):
        raise MessageError("labels must be a list of non-empty strings")
    if not labels:
        raise MessageError("a head needs at least one label")
    if len(set(labels)) != len(labels):
        raise MessageError("head labels must be unique")
    version = doc.get("version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise MessageError("version must be an integer")
    kind = doc.get("kind", "zero-shot")
    if kind not in _KINDS:
        raise MessageError(f"kind must be one of {', '.join(_KINDS)}, got {kind!r}")
    prompts = doc.get("prompts", {})
    if not isinstance(prompts, dict) or not all(
        isinstance(k, str) and isinstance(v, list) and all(isinstance(p, str) for p in v)
        for k, v in prompts.items()
    ):
        raise MessageError("prompts must map each label to a list of strings")
    created_at = doc.get("created_at", 0)
    if not isinstance(created_at, int) or isinstance(created_at, bool):
        raise MessageError("created_at must be an integer (ms since epoch)")
    return {
        "labels": tuple(labels),
        "version": version,
        "kind": kind,
        "prompts": prompts,
        "created_at": created_at,
    }


def _b64(a: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(a, dtype="<f4").tobytes()).decode("ascii")


def _unb64(value: object, name: str, count: int) -> np.ndarray:
    if not isinstance(value, str):
        raise MessageError(f"head message {name} must be a base64 string")
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise MessageError(f"head message {name} is not valid base64") from None
    if len(raw) != 4 * count:
        raise MessageError(f"head message {name} holds {len(raw) // 4} floats, expected {count}")
    return np.frombuffer(raw, dtype="<f4").astype(np.float32)


def atomic_write(path: Path, data: bytes) -> None:
    """Write `data` to `path` so a reader sees the old file or the new one, never a part."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; a bundle is read by other users' services
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
