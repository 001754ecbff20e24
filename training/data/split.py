"""A verified, stratified, seeded train/val/test split, written as `split.json`: every file with
its label and SHA-256, so every later stage (and DVC) sees the same split, and two evaluations
can tell whether they used the same test images (`Manifest.fingerprint`).

Every image is decoded once here through the engines' decoder; one that cannot be read is
skipped and counted, never silently trained on later.
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from harclip.errors import DecodeError
from harclip.model.head import atomic_write
from training.data.sources import Listing, Record, check_classes
from training.errors import DataError

SPLIT_FORMAT = "harclip.split/1"
SPLITS: tuple[str, ...] = ("train", "val", "test")
MAX_PIXELS = 40_000_000  # the engines' default decompression-bomb limit


@dataclass(frozen=True)
class Item:
    file: str  # relative to the manifest's root
    label: str
    sha256: str


@dataclass(frozen=True)
class Manifest:
    """The contents of split.json; `root` is absolute once loaded."""

    source: str
    root: Path
    classes: tuple[str, ...]
    seed: int
    fractions: dict[str, float]
    splits: dict[str, list[Item]]
    skipped: list[dict[str, str]] = field(default_factory=list)
    request: dict[str, Any] = field(default_factory=dict)  # the data config that made it

    def items(self, split: str) -> list[Item]:
        """The items of `split` (train | val | test), or of every split for `all`."""
        if split == "all":
            return [it for name in SPLITS for it in self.splits.get(name, [])]
        if split not in SPLITS:
            raise DataError(f"unknown split {split!r}; choose train, val, test or all")
        return list(self.splits.get(split, []))

    def paths(self, split: str) -> list[Path]:
        return [self.root / it.file for it in self.items(split)]

    def label_ids(self, split: str) -> list[int]:
        index = {c: i for i, c in enumerate(self.classes)}
        return [index[it.label] for it in self.items(split)]

    def fingerprint(self, split: str) -> str:
        """SHA-256 over the sorted (content hash, label) pairs of `split`: equal for the same
        images with the same labels, wherever the files live."""
        h = hashlib.sha256()
        for sha, label in sorted((it.sha256, it.label) for it in self.items(split)):
            h.update(f"{sha} {label}\n".encode())
        return h.hexdigest()

    def counts(self) -> dict[str, int]:
        return {name: len(self.splits.get(name, [])) for name in SPLITS}

    def to_json(self, where: Path) -> bytes:
        """The document, with `root` relative to `where`'s folder when it can be."""
        try:
            root = os.path.relpath(self.root, where.parent.resolve())
        except ValueError:  # another drive
            root = str(self.root)
        doc: dict[str, Any] = {
            "format": SPLIT_FORMAT,
            "source": self.source,
            "root": root,
            "classes": list(self.classes),
            "seed": self.seed,
            "fractions": self.fractions,
            "counts": self.counts(),
            "fingerprints": {name: self.fingerprint(name) for name in SPLITS},
            "splits": {
                name: [{"file": it.file, "label": it.label, "sha256": it.sha256} for it in items]
                for name, items in self.splits.items()
            },
            "skipped": self.skipped,
            "request": self.request,
        }
        return orjson.dumps(doc, option=orjson.OPT_INDENT_2)

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, self.to_json(path))


def load_manifest(path: Path) -> Manifest:
    """Read split.json; `DataError` naming what is wrong with it."""
    try:
        doc = orjson.loads(path.read_bytes())
    except FileNotFoundError:
        raise DataError(f"split manifest {path} does not exist; write it with `prepare`") from None
    except (OSError, orjson.JSONDecodeError) as e:
        raise DataError(f"cannot read split manifest {path}: {e}") from None
    if not isinstance(doc, dict) or doc.get("format") != SPLIT_FORMAT:
        raise DataError(f"{path} is not a split manifest (format {SPLIT_FORMAT!r})")
    try:
        splits = {
            name: [Item(str(it["file"]), str(it["label"]), str(it["sha256"])) for it in items]
            for name, items in doc["splits"].items()
        }
        classes = tuple(str(c) for c in doc["classes"])
        root = (path.parent / str(doc["root"])).resolve()
        return Manifest(
            source=str(doc["source"]),
            root=root,
            classes=classes,
            seed=int(doc["seed"]),
            fractions={k: float(v) for k, v in doc["fractions"].items()},
            splits=splits,
            skipped=list(doc.get("skipped", [])),
            request=dict(doc.get("request", {})),
        )
    except (KeyError, TypeError, ValueError) as e:
        raise DataError(f"split manifest {path} is malformed: {e!r}") from None


def stratified_split(
    labels: Sequence[str], val_fraction: float, test_fraction: float, seed: int
) -> dict[str, list[int]]:
    """Indices of `labels` per split: each class shuffled with `seed`, then cut so every split
    holds about its fraction of each class (rounded per class; train keeps at least one)."""
    by_class: dict[str, list[int]] = {}
    for i, label in enumerate(labels):
        by_class.setdefault(label, []).append(i)
    rng = np.random.default_rng(seed)
    out: dict[str, list[int]] = {name: [] for name in SPLITS}
    for label in sorted(by_class):
        idx = by_class[label]
        order = [idx[j] for j in rng.permutation(len(idx))]
        n = len(order)
        n_test = min(round(n * test_fraction), n - 1)
        n_val = min(round(n * val_fraction), n - 1 - n_test)
        out["test"] += order[:n_test]
        out["val"] += order[n_test : n_test + n_val]
        out["train"] += order[n_test + n_val :]
    return {name: sorted(v) for name, v in out.items()}


def build_manifest(
    listing: Listing,
    *,
    val_fraction: float,
    test_fraction: float,
    seed: int,
    max_per_class: int | None = None,
    progress: Callable[[int], None] | None = None,
    request: dict[str, Any] | None = None,
) -> Manifest:
    """Verify every image (decode + hash), cap each class, split, and return the manifest."""
    records = _cap(listing.records, max_per_class, seed)
    checked = verify_images(records, progress=progress)
    good = [(r, sha) for r, sha, err in checked if err is None]
    skipped = [{"file": _rel(r.file, listing.root), "reason": err} for r, _, err in checked if err]
    skipped += [{"file": f, "reason": "file does not exist"} for f in listing.missing]
    check_classes(listing.source, [r.label for r, _ in good])
    parts = stratified_split([r.label for r, _ in good], val_fraction, test_fraction, seed)
    splits = {
        name: [Item(_rel(good[i][0].file, listing.root), good[i][0].label, good[i][1])
               for i in idx]
        for name, idx in parts.items()
    }  # fmt: skip
    return Manifest(
        source=listing.source,
        root=listing.root,
        classes=tuple(sorted({r.label for r, _ in good})),
        seed=seed,
        fractions={"val": val_fraction, "test": test_fraction},
        splits=splits,
        skipped=skipped,
        request=dict(request or {}),
    )


def verify_images(
    records: Sequence[Record], *, progress: Callable[[int], None] | None = None, threads: int = 2
) -> list[tuple[Record, str, str | None]]:
    """(record, sha256, error or None) per record: read, hash and decode each image once."""
    from harclip.model.preprocess import decode_rgb

    def one(r: Record) -> tuple[Record, str, str | None]:
        try:
            data = r.file.read_bytes()
        except OSError as e:
            return r, "", f"cannot read: {e.strerror}"
        sha = hashlib.sha256(data).hexdigest()
        try:
            decode_rgb(data, max_pixels=MAX_PIXELS, min_side=64)
        except DecodeError as e:
            return r, sha, str(e)
        return r, sha, None

    out = []
    with ThreadPoolExecutor(threads) as pool:
        for result in pool.map(one, records):
            out.append(result)
            if progress is not None:
                progress(1)
    return out


def summary(manifest: Manifest) -> str:
    """One line: classes, images per split, skipped."""
    c = manifest.counts()
    per_class = Counter(it.label for it in manifest.items("all"))
    lo, hi = min(per_class.values()), max(per_class.values())
    return (
        f"{len(manifest.classes)} classes ({lo}-{hi} images each): train {c['train']}, "
        f"val {c['val']}, test {c['test']}; {len(manifest.skipped)} unreadable skipped"
    )


def _cap(records: Iterable[Record], max_per_class: int | None, seed: int) -> list[Record]:
    records = list(records)
    if max_per_class is None:
        return records
    rng = np.random.default_rng(seed)
    by_class: dict[str, list[Record]] = {}
    for r in records:
        by_class.setdefault(r.label, []).append(r)
    kept: list[Record] = []
    for label in sorted(by_class):
        rs = by_class[label]
        if len(rs) > max_per_class:
            rs = [rs[j] for j in sorted(rng.permutation(len(rs))[:max_per_class])]
        kept += rs
    return kept


def _rel(file: Path, root: Path) -> str:
    try:
        return file.relative_to(root).as_posix()
    except ValueError:
        return str(file)
