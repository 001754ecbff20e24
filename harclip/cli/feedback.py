"""`harclip feedback import DIR|CSV [--stream NAME] [--name NAME]` and `harclip feedback list`.

`import` turns a labelled folder (one sub-folder of photos per label) or a CSV of `file,label`
(also `path,label`; files relative to the CSV) into `correct` verdicts in the feedback index, as
if an operator had confirmed each photo's label: each photo is embedded by the bundle's engine
(in batches), stored in the object store under `feedback/<stream>/<day>/<id>.jpg`, and recorded
with `by` = `import:<name>`. A bad row (missing or unreadable file, a file outside the folder, a
bad label) is reported by its line and the rest goes on; the exit status is 1 when any was bad.
A photo's `frame_id` is `import-<sha256 of its bytes>`, so importing it again adds a verdict on
the same frame (the latest wins) instead of a second frame. `list` prints verdicts (the latest
of each frame) from Elasticsearch.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import hashlib
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import TypeAdapter, ValidationError

from harclip.argtypes import POSITIVE, whole
from harclip.config import Settings
from harclip.errors import HarclipError
from harclip.messages.feedback import FeedbackLabel

if TYPE_CHECKING:
    import numpy as np

    from harclip.engines import Engine
    from harclip.io.objects import ObjectStore
    from harclip.messages.feedback import Feedback
    from harclip.messages.prediction import ModelRef

_LABEL = TypeAdapter(FeedbackLabel)
MAX_ROWS = 100_000  # rows of one import


@dataclass(frozen=True, slots=True)
class Row:
    """One photo to import: where it was named (`where`: "line 7" or a path), file, label."""

    where: str
    file: Path
    label: str


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    imp = sub.add_parser("import", help="labelled photos -> correct verdicts (embedded, stored)")
    imp.add_argument("source", type=Path, help="a folder of label folders, or a CSV file,label")
    imp.add_argument("--stream", default="import", help="stream id recorded (default: import)")
    imp.add_argument("--name", help="recorded as by=import:NAME (default: the folder's name)")
    imp.add_argument("--bundle", type=Path, help="model bundle (default: HARCLIP_MODEL__BUNDLE)")
    imp.add_argument("--batch-size", type=POSITIVE, default=32, help="photos per engine call")
    ls = sub.add_parser("list", help="verdicts, newest first (each frame's latest)")
    ls.add_argument("--stream", help="only this stream")
    ls.add_argument("--label", help="only this right label ('none': none of these)")
    ls.add_argument("--verdict", choices=("correct", "wrong"))
    ls.add_argument("--limit", type=whole(1, 1000), default=50, help="at most this many (<= 1000)")


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.action == "list":
        return asyncio.run(_list(args, settings))
    return asyncio.run(_import(args, settings))


# ----------------------------------------------------------------------------- reading


def read_rows(source: Path) -> tuple[list[Row], list[str]]:
    """The photos a folder or CSV names, and one problem line per bad row (the rest is kept)."""
    if source.is_dir():
        return _folder_rows(source)
    if source.is_file() and source.suffix.lower() == ".csv":
        return _csv_rows(source)
    raise HarclipError(f"{source}: not a folder of label folders nor a .csv file")


def _folder_rows(root: Path) -> tuple[list[Row], list[str]]:
    from harclip.model.imageio import IMAGE_SUFFIXES

    labels = root / "labels.csv"
    if labels.is_file():  # a labelled folder with its own listing (e.g. har-sample)
        return _csv_rows(labels)
    rows: list[Row] = []
    problems: list[str] = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for f in sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES):
            problem = _label_problem(folder.name) or _outside(root, f)
            if problem:
                problems.append(f"{f}: {problem}")
            else:
                rows.append(Row(str(f), f, folder.name))
    if not rows and not problems:
        raise HarclipError(f"{root} holds no label folders of photos (nor a labels.csv)")
    return rows, problems


def _csv_rows(path: Path) -> tuple[list[Row], list[str]]:
    root = path.parent
    rows: list[Row] = []
    problems: list[str] = []
    try:
        with path.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            cols = reader.fieldnames or []
            col = next((c for c in ("file", "path", "filename") if c in cols), None)
            if col is None or "label" not in cols:
                raise HarclipError(f"{path}: needs the columns file,label (has {', '.join(cols)})")
            for row in reader:
                if len(rows) + len(problems) >= MAX_ROWS:
                    raise HarclipError(f"{path}: more than {MAX_ROWS} rows; split it")
                where = f"line {reader.line_num}"
                rel, label = (row.get(col) or "").strip(), (row.get("label") or "").strip()
                file = root / rel
                problem = (
                    ("no file named" if not rel else None) or _label_problem(label)
                    or _outside(root, file) or (None if file.is_file() else f"no file {rel!r}")
                )  # fmt: skip
                if problem:
                    problems.append(f"{where}: {problem}")
                else:
                    rows.append(Row(where, file, label))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise HarclipError(f"cannot read {path}: {e}") from None
    return rows, problems


def _label_problem(label: str) -> str | None:
    try:
        _LABEL.validate_python(label)
    except ValidationError as e:
        return f"label {label[:80]!r}: {e.errors()[0]['msg']}"
    return None


def _outside(root: Path, file: Path) -> str | None:
    try:
        file.resolve().relative_to(root.resolve())
    except ValueError:
        return f"{file} is outside {root}"
    return None


# ----------------------------------------------------------------------------- import


async def _import(args: argparse.Namespace, settings: Settings) -> int:
    from harclip.ids import check_stream_id
    from harclip.io.es import make_es
    from harclip.io.feedback import ensure_feedback_index, index_feedback
    from harclip.io.objects import ObjectStore
    from harclip.messages.prediction import ModelRef
    from harclip.model.bundle import Bundle

    stream = check_stream_id(args.stream)
    if args.batch_size < 1:
        raise HarclipError("--batch-size must be >= 1")
    name = args.name or args.source.resolve().stem
    rows, problems = read_rows(args.source)
    for p in problems:
        print(f"skipped {p}", file=sys.stderr)
    path = args.bundle or settings.model.bundle
    if path is None:
        raise HarclipError("no model bundle: pass --bundle or set HARCLIP_MODEL__BUNDLE")
    bundle = Bundle.load(path)
    m = bundle.manifest
    from harclip.cli.predict import _open_engine

    engine = await asyncio.to_thread(_open_engine, bundle, settings.model.engine, settings)
    model = ModelRef(name=m.name, version=str(m.version),
                     head_version=bundle.load_head().version, engine=engine.label)  # fmt: skip
    es = make_es(settings.elasticsearch)
    store = ObjectStore(settings.objects) if settings.objects.enabled else None
    done = 0
    try:
        await ensure_feedback_index(es, settings.elasticsearch)
        if store is not None:
            await store.start()
        for start in range(0, len(rows), args.batch_size):
            batch = rows[start : start + args.batch_size]
            docs, bad = await _batch(batch, engine, settings, store, stream, name, model)
            for line in bad:
                print(f"skipped {line}", file=sys.stderr)
            problems += bad
            await index_feedback(es, settings.elasticsearch, docs, refresh=False)
            done += len(docs)
            print(f"imported {done}/{len(rows)}", file=sys.stderr, flush=True)
        await es.indices.refresh(index=settings.elasticsearch.feedback_index)
    finally:
        engine.close()
        await es.close()
        if store is not None:
            await store.close()
    print(f"{done} verdicts imported into stream {stream!r} as import:{name}; "
          f"{len(problems)} rows skipped")  # fmt: skip
    return 1 if problems else 0


async def _batch(
    rows: list[Row], engine: Engine, settings: Settings, store: ObjectStore | None, stream: str,
    name: str, model: ModelRef,
) -> tuple[list[Feedback], list[str]]:  # fmt: skip
    """Embed one batch, store its photos; the verdicts, and a line per photo that failed."""
    import numpy as np

    from harclip.io.keys import feedback_key
    from harclip.messages import new_frame_id, now_ms
    from harclip.messages.feedback import Feedback
    from harclip.model.preprocess import preprocess_batch

    datas: list[bytes] = []
    bad: dict[int, str] = {}
    for i, row in enumerate(rows):
        try:
            datas.append(row.file.read_bytes())
        except OSError as e:
            bad[i] = f"cannot read {row.file}: {e.strerror or e}"
            datas.append(b"")
    pixels, errors = preprocess_batch(datas, engine.image_size,
                                      max_pixels=settings.model.max_pixels)  # fmt: skip
    for i, err in enumerate(errors):
        if err is not None and i not in bad:
            bad[i] = f"{rows[i].file}: {err}"
    ok = [i for i in range(len(rows)) if i not in bad]
    emb = engine.embed(pixels[ok]) if ok else np.zeros((0, 1), np.float32)  # [N, S, S, 3] -> [N, D]
    docs: list[Feedback] = []
    for i, vector in zip(ok, emb, strict=True):
        at = now_ms()
        fid = new_frame_id(at)
        key = None
        if store is not None:
            key = feedback_key(stream, at, fid)
            await store.put(key, _jpeg(datas[i]), "image/jpeg")
        frame = f"import-{hashlib.sha256(datas[i]).hexdigest()}"
        docs.append(Feedback(
            feedback_id=fid, target="frame", frame_id=frame,
            stream_id=stream, verdict="correct", label=rows[i].label, by=f"import:{name}",
            given_at=at, model=model, embedding=_unit(vector), image=key,
        ))  # fmt: skip
    return docs, [f"{rows[i].where}: {bad[i]}" for i in sorted(bad)]


def _unit(v: np.ndarray) -> list[float]:
    import numpy as np

    norm = float(np.linalg.norm(v))
    return [float(x) for x in (v / norm if norm > 0 else v)]


def _jpeg(data: bytes) -> bytes:
    """The photo as JPEG (other formats re-encoded, quality 90)."""
    import cv2
    import numpy as np

    if data[:3] == b"\xff\xd8\xff":
        return data
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise HarclipError("cannot decode the photo")
    ok, out = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])
    if not ok:
        raise HarclipError("cannot encode a JPEG")
    return bytes(out)


# ----------------------------------------------------------------------------- list


async def _list(args: argparse.Namespace, settings: Settings) -> int:
    from harclip.io.es import make_es
    from harclip.io.feedback import FeedbackFilter, list_feedback

    limit = args.limit  # 1..1000 (its argparse type)
    f = FeedbackFilter(stream_id=args.stream, verdict=args.verdict,
                       label=None if args.label == "none" else args.label,
                       label_none=args.label == "none")  # fmt: skip
    es = make_es(settings.elasticsearch)
    try:
        items, more = await list_feedback(es, settings.elasticsearch, f, limit)
    finally:
        await es.close()
    print(f"{'given_at':<24} {'stream':<20} {'verdict':<8} {'served':<20} {'label':<20} by")
    for fb in items:
        at = datetime.fromtimestamp(fb.given_at / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")
        label = "(none of these)" if fb.label is None else fb.label
        print(f"{at:<24} {fb.stream_id[:20]:<20} {fb.verdict:<8} {(fb.predicted or '-')[:20]:<20} "
              f"{label[:20]!s:<20} {fb.by}")  # fmt: skip
    if more:
        print("(more: raise --limit, at most 1000)", file=sys.stderr)
    return 0
