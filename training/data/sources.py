"""Where labelled images come from: a folder with one sub-folder per class, a CSV of
`file,label` (paths relative to the CSV), or a Hugging Face dataset (`hf:ID` through the real
`datasets` loading code; `hf:DIR` for one saved with `save_to_disk`). Each is listed as
(file, label) records; a Hugging Face dataset's images are written out as files first, so every
later stage, and DVC, sees plain files.

A source is data, not instructions: no file outside its own root is listed or read (`../`,
absolute paths and symlinks that leave the root are refused), and a class name becomes a safe
folder name, never a path."""

from __future__ import annotations

import csv
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harclip.model.imageio import IMAGE_SUFFIXES, sniff_format
from training.config import DataConfig
from training.errors import DataError


@dataclass(frozen=True)
class Record:
    file: Path  # absolute
    label: str


@dataclass(frozen=True)
class Listing:
    source: str  # as given
    root: Path  # the folder manifest paths are relative to
    records: list[Record]
    missing: list[str]  # files a CSV names that do not exist (counted as unreadable)


def list_source(cfg: DataConfig, cache_dir: Path, classes: Sequence[str] | None = None) -> Listing:
    """The records of `cfg.source`; `DataError` in one line when it cannot be used. With
    `classes`, a folder source must have a sub-folder for each of them (and others are left
    out)."""
    source = cfg.source
    if not source:
        raise DataError("no data: pass --data FOLDER|FILE.csv|hf:ID or --manifest split.json")
    if source.startswith("hf:"):
        listing = _from_hf(source, cfg, cache_dir)
    else:
        path = Path(source).expanduser()
        if path.is_dir():
            listing = _from_folder(source, path, classes)
        elif path.is_file() and path.suffix.lower() == ".csv":
            listing = _from_csv(source, path)
        elif path.exists():
            raise DataError(f"data source {path} is neither a folder nor a .csv file")
        else:
            raise DataError(f"data source {path} does not exist")
    if classes is not None:
        wanted = set(classes)
        kept = [r for r in listing.records if r.label in wanted]
        listing = Listing(listing.source, listing.root, kept, listing.missing)
    check_classes(listing.source, [r.label for r in listing.records])
    return listing


def check_classes(where: str, labels: Sequence[str], hint: str = "") -> None:
    """`DataError` unless `labels` hold at least two classes."""
    found = sorted(set(labels))
    if len(found) >= 2:
        return
    what = f"only class {found[0]!r}" if found else "no labelled images"
    raise DataError(f"{where} has {what}: training and evaluation need at least 2 classes{hint}")


def _from_folder(source: str, root: Path, classes: Sequence[str] | None) -> Listing:
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    names = [p.name for p in folders]
    if classes is not None:
        missing = [c for c in classes if c not in names]
        if missing:
            raise DataError(f"class folder {root / missing[0]} is missing ({len(missing)} missing)")
    if not folders:
        raise DataError(f"{root} has no class folders: expected one sub-folder of images per class")
    top = root.resolve()
    records: list[Record] = []
    for folder in folders:
        files = sorted(
            p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
        )
        if not files and (classes is None or folder.name in classes):
            raise DataError(f"class folder {folder} holds no images")
        records += [Record(_inside(top, f, f"{source}: {f}"), folder.name) for f in files]
    return Listing(source, top, records, [])


def _from_csv(source: str, path: Path) -> Listing:
    root = path.parent.resolve()
    try:
        with path.open(newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise DataError(f"cannot read CSV {path}: {e}") from None
    if not rows:
        raise DataError(f"CSV {path} has no rows")
    file_col = next((c for c in ("file", "path", "filename") if c in rows[0]), None)
    if file_col is None or "label" not in rows[0]:
        raise DataError(f"CSV {path} needs the columns file,label (has {', '.join(rows[0])})")
    records, missing = [], []
    for row in rows:
        rel, label = (row.get(file_col) or "").strip(), (row.get("label") or "").strip()
        if not rel or not label:
            raise DataError(f"CSV {path}: a row lacks its file or label: {row}")
        if Path(rel).is_absolute() or Path(rel).drive:
            raise DataError(
                f"CSV {path}: file {rel!r} is an absolute path; name files relative to the CSV"
            )
        file = _inside(root, root / rel, f"CSV {path}: file {rel!r}")
        if file.is_file():
            records.append(Record(file, label))
        else:
            missing.append(rel)
    return Listing(source, root, records, missing)


# --- Hugging Face datasets ------------------------------------------------------------------


def _from_hf(source: str, cfg: DataConfig, cache_dir: Path) -> Listing:
    """Load split `cfg.hf_split` with `datasets`, refuse a one-class split, write its images
    under `cache_dir/hf/<split>/<label>/` and list them."""
    ident = source.removeprefix("hf:")
    ds = load_hf_split(ident, cfg.hf_split, cfg.hf_revision)
    image_col, label_col = cfg.hf_image_column, cfg.hf_label_column
    for col in (image_col, label_col):
        if col not in ds.column_names:
            raise DataError(
                f"dataset {ident!r} split {cfg.hf_split!r} has no column {col!r} "
                f"(columns: {', '.join(ds.column_names)}); set data.hf_image_column / "
                "data.hf_label_column"
            )
    names = _label_names(ds.features[label_col])
    raw_labels = list(ds[label_col])
    labels = [names(v) for v in raw_labels]
    check_classes(
        f"dataset {ident!r} split {cfg.hf_split!r}",
        labels,
        hint=" (an unlabelled split, like the HAR test split whose labels are all 0? use the "
        "labelled train split, data.hf_split=train, and let prepare split it into "
        "train/val/test)",
    )
    from datasets import Image

    ds = ds.cast_column(image_col, Image(decode=False))
    out = (cache_dir / "hf" / _folder_name(cfg.hf_split, "split")).resolve()
    folders = {label: _folder_name(label, "class") for label in set(labels)}
    roots = _dataset_roots(ident)
    records: list[Record] = []
    for i, (row, label) in enumerate(zip(ds, labels, strict=True)):
        data = _image_bytes(row[image_col], roots)
        ext = {"jpeg": ".jpg"}.get(sniff_format(data) or "", f".{sniff_format(data) or 'bin'}")
        f = out / folders[label] / f"{i:06d}{ext}"
        if not f.is_file() or f.stat().st_size != len(data):
            f.parent.mkdir(parents=True, exist_ok=True)
            f.write_bytes(data)
        records.append(Record(f.resolve(), label))
    return Listing(source, out, records, [])


def load_hf_split(ident: str, split: str, revision: str | None = None) -> Any:
    """One split of a dataset: a folder saved with `save_to_disk` (a Dataset or DatasetDict),
    or a hub id through `datasets.load_dataset` at `revision` (a commit sha pins it; cached;
    fails in one line when offline)."""
    import datasets

    datasets.logging.set_verbosity_error()
    datasets.disable_progress_bars()
    folder = Path(ident).expanduser()
    if folder.is_dir():
        try:
            loaded = datasets.load_from_disk(str(folder))
        except (FileNotFoundError, ValueError) as e:
            raise DataError(f"{folder} is not a saved Hugging Face dataset: {e}") from None
        if isinstance(loaded, datasets.DatasetDict):
            if split not in loaded:
                raise DataError(f"dataset {folder} has no split {split!r} ({', '.join(loaded)})")
            return loaded[split]
        return loaded
    try:
        return datasets.load_dataset(ident, split=split, revision=revision)
    except (ConnectionError, OSError) as e:
        raise DataError(
            f"cannot load dataset {ident!r} from the Hugging Face hub ({_first_line(e)}); "
            "check the network, or pass a local image folder or CSV with --data"
        ) from None
    except ValueError as e:  # unknown split and the like
        raise DataError(
            f"cannot load dataset {ident!r} split {split!r}: {_first_line(e)}"
        ) from None


def _label_names(feature: Any) -> Callable[[Any], str]:
    names = getattr(feature, "names", None)
    if names:
        return lambda v: str(names[int(v)])
    return lambda v: str(v)


def _image_bytes(cell: Any, roots: Sequence[Path]) -> bytes:
    """The bytes of an image cell; a cell that names a file instead is read only when the file
    lies inside one of `roots` (the dataset's own files), never any local file it names."""
    if isinstance(cell, dict):
        if cell.get("bytes"):
            return bytes(cell["bytes"])
        if cell.get("path"):
            name = str(cell["path"])
            for root in roots:
                file = (root / name).resolve()  # an absolute name stays itself
                if file.is_relative_to(root) and file.is_file():
                    return file.read_bytes()
            raise DataError(
                f"an image cell names the file {name!r}, which is not one of the dataset's own "
                "files; only files inside the dataset are read"
            )
    raise DataError(f"an image cell holds neither bytes nor a path: {type(cell).__name__}")


def _dataset_roots(ident: str) -> list[Path]:
    """Where a dataset's own files live: the folder of one saved with `save_to_disk`, else the
    `datasets` and hub caches its files were downloaded to."""
    folder = Path(ident).expanduser()
    if folder.is_dir():
        return [folder.resolve()]
    import datasets.config
    from huggingface_hub import constants

    caches = (datasets.config.HF_DATASETS_CACHE, constants.HF_HUB_CACHE)
    return [Path(c).expanduser().resolve() for c in caches]


_MAX_NAME = 120  # characters of a folder name made from a class name


def _folder_name(name: str, what: str) -> str:
    """`name` as one safe path component: path separators and control characters become `_`;
    an empty name, `.`, `..` or an over-long one is refused."""
    safe = "".join(
        "_" if c in "/\\:" or unicodedata.category(c).startswith("C") else c for c in name
    ).strip()
    if safe in ("", ".", "..") or len(safe) > _MAX_NAME:
        raise DataError(
            f"{what} name {name[:_MAX_NAME]!r} cannot be a folder name (empty, '.', '..' "
            f"or over {_MAX_NAME} characters)"
        )
    return safe


def _inside(root: Path, path: Path, what: str) -> Path:
    """`path` resolved (symlinks followed); `DataError` when it leaves `root` (resolved)."""
    file = path.resolve()
    if not file.is_relative_to(root):
        raise DataError(f"{what} lies outside the data root {root}: refused")
    return file


def _first_line(e: BaseException) -> str:
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    return lines[0] if lines else type(e).__name__
