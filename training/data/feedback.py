"""The feedback index as a dataset: `python -m training prepare --from-feedback` writes each
judged frame's latest verdict that names a label and kept an image into a folder
(`images/<feedback_id>.jpg` + `labels.csv` of path,label,stream_id,verdict,by,given_at), which
the usual `prepare` then verifies, fingerprints (SHA-256 per file) and splits; `--dvc` tracks the
folder with `dvc add`. "None of these" verdicts name no class and verdicts without an image
have nothing to train on: both are counted and left out."""

from __future__ import annotations

import asyncio
import csv
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harclip.config import Settings
from harclip.messages.feedback import Feedback
from training.errors import DataError

LABELS_FILE = "labels.csv"
IMAGES = "images"
_PAGE = 1000  # documents per Elasticsearch request
MAX_DOCS = 2_000_000  # verdicts read at most


@dataclass(frozen=True, slots=True)
class Exported:
    """What an export wrote and left out (counts of the frames' latest verdicts)."""

    csv: Path
    images: int
    none_of_these: int
    no_image: int
    missing_objects: int


def export_feedback(settings: Settings, out: Path, stream: str | None = None,
                    since_ms: int | None = None) -> Exported:  # fmt: skip
    """Write the dataset folder `out` from the feedback index (`stream`, `since_ms` filter it)."""
    return asyncio.run(_export(settings, out, stream, since_ms))


async def _export(
    settings: Settings, out: Path, stream: str | None, since_ms: int | None
) -> Exported:
    from harclip.io.es import make_es
    from harclip.io.objects import ObjectStore

    if not settings.objects.enabled:
        raise DataError("the object store is off (HARCLIP_OBJECTS__ENABLED): feedback images "
                        "are kept there")  # fmt: skip
    es = make_es(settings.elasticsearch)
    try:
        latest = await _latest(es, settings, stream, since_ms)
    finally:
        await es.close()
    labelled = [fb for fb in latest if fb.label is not None and fb.image]
    none = sum(1 for fb in latest if fb.label is None)
    no_image = sum(1 for fb in latest if fb.label is not None and not fb.image)
    images = out / IMAGES
    images.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    missing = 0
    store = ObjectStore(settings.objects)
    await store.start()
    try:
        for fb in labelled:
            path = images / f"{fb.feedback_id}.jpg"
            if not path.is_file():  # an image never changes: a rerun fetches only new ones
                assert fb.image is not None
                body = await store.get(fb.image)
                if body is None:
                    missing += 1
                    continue
                path.write_bytes(body.data)
            rows.append({"path": f"{IMAGES}/{path.name}", "label": fb.label,
                         "stream_id": fb.stream_id, "verdict": fb.verdict, "by": fb.by,
                         "given_at": fb.given_at})  # fmt: skip
    finally:
        await store.close()
    kept = {r["path"].split("/", 1)[1] for r in rows}
    for stale in images.glob("*.jpg"):  # superseded verdicts: the folder holds exactly the CSV
        if stale.name not in kept:
            stale.unlink()
    csv_path = out / LABELS_FILE
    with csv_path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, ["path", "label", "stream_id", "verdict", "by", "given_at"])
        writer.writeheader()
        writer.writerows(sorted(rows, key=lambda r: r["path"]))
    return Exported(csv_path, len(rows), none, no_image, missing)


async def _latest(
    es: Any, settings: Settings, stream: str | None, since_ms: int | None
) -> list[Feedback]:
    """Every frame's latest verdict (all pages, oldest first so the newest overwrites)."""
    filters: list[dict[str, Any]] = []
    if stream is not None:
        filters.append({"term": {"stream_id": stream}})
    if since_ms is not None:
        filters.append({"range": {"given_at": {"gte": since_ms}}})
    by_frame: dict[str, Feedback] = {}
    after: list[Any] | None = None
    seen = 0
    while True:
        resp = await es.search(
            index=settings.elasticsearch.feedback_index, ignore_unavailable=True,
            allow_no_indices=True, size=_PAGE, query={"bool": {"filter": filters}},
            sort=[{"given_at": "asc"}, {"feedback_id": "asc"}], search_after=after,
            source_excludes=["embedding"], track_total_hits=False,
        )  # fmt: skip
        hits = resp["hits"]["hits"]
        for h in hits:
            fb = Feedback.model_validate(h["_source"])
            by_frame[fb.frame_id] = fb
        seen += len(hits)
        if len(hits) < _PAGE:
            return list(by_frame.values())
        if seen >= MAX_DOCS:
            raise DataError(f"more than {MAX_DOCS} verdicts: narrow them with --since-ms")
        after = list(hits[-1]["sort"])


def dvc_add(folder: Path) -> None:
    """`dvc add FOLDER` (the project must be a DVC project: `dvc init`)."""
    dvc = Path(sys.executable).parent / "dvc"
    cmd = [str(dvc) if dvc.is_file() else "dvc", "add", folder.name]
    try:
        proc = subprocess.run(cmd, cwd=folder.parent, capture_output=True, text=True, check=False)
    except OSError as e:
        raise DataError(f"cannot run dvc: {e}") from None
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["?"]
        raise DataError(f"dvc add {folder}: {tail[0]}")
