"""`python -m training prepare --from-feedback` on real Elasticsearch and the object store: each
frame's latest verdict with a label and an image becomes a file of the dataset folder and a row
of its labels.csv, "none of these" is left out, the usual prepare fingerprints and splits it, and
`--dvc` tracks the folder."""

from __future__ import annotations

import asyncio
import csv
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from harclip.io.es import make_es
from harclip.io.feedback import ensure_feedback_index, index_feedback
from harclip.io.keys import feedback_key
from harclip.io.objects import ObjectStore
from harclip.messages.feedback import Feedback
from tests.support.processes import env_of
from tests.support.scoped import Unique
from training.cli import main

T0 = 1_760_000_000_000


def _fb(i: int, frame: str, label: str | None, image: str | None) -> Feedback:
    return Feedback(feedback_id=f"fb{i:04d}", target="frame", frame_id=frame, stream_id="cam",
                    verdict="wrong", label=label, predicted="x", by="op", given_at=T0 + i,
                    image=image)  # fmt: skip


async def _seed(unique: Unique, photos: list[Path]) -> None:
    s = unique.settings
    store = ObjectStore(s.objects)
    es = make_es(s.elasticsearch)
    await store.start()
    docs: list[Feedback] = []
    try:
        for i, photo in enumerate(photos):
            key = feedback_key("cam", T0 + i, f"fb{i:04d}")
            await store.put(key, photo.read_bytes(), "image/jpeg")
            docs.append(_fb(i, f"f{i}", photo.parent.name, key))
        n = len(photos)
        docs.append(_fb(n, "f0", "superseded-later", docs[0].image))  # f0's latest: new label
        docs.append(_fb(n + 1, "f-none", None, None))  # none of these
        await ensure_feedback_index(es, s.elasticsearch)
        await index_feedback(es, s.elasticsearch, docs, refresh=True)
    finally:
        await store.close()
        await es.close()


def test_prepare_from_feedback(
    unique: Unique, sample_photos: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    photos = [p for label in ("clapping", "cycling", "dancing")
              for p in [q for q in sample_photos if q.parent.name == label][:5]]  # fmt: skip
    asyncio.run(_seed(unique, photos))
    for k, v in env_of(unique.settings).items():
        monkeypatch.setenv(k, v)
    dvc = Path(sys.executable).parent / "dvc"
    subprocess.run([str(dvc), "init", "--no-scm", "-q"], cwd=tmp_path, check=True)
    out, run = tmp_path / "data" / "feedback", tmp_path / "run"
    out.parent.mkdir()
    code = main(["prepare", "--from-feedback", "--feedback-dir", str(out), "--output", str(run),
                 "--dvc", "--quiet", "--set", "data.val_fraction=0.2",
                 "--set", "data.test_fraction=0.2"])  # fmt: skip
    assert code == 0
    with (out / "labels.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(photos)  # f0 once (its latest), none-of-these left out
    labels = {r["path"]: r["label"] for r in rows}
    assert "images/fb0000.jpg" not in labels  # f0's older verdict lost to its latest
    assert labels[f"images/fb{len(photos):04d}.jpg"] == "superseded-later"
    assert len(list((out / "images").glob("*.jpg"))) == len(photos)
    split = orjson.loads((run / "split.json").read_bytes())
    items = [it for part in split["splits"].values() for it in part]
    assert len(items) == len(photos)
    assert all(len(it["sha256"]) == 64 for it in items)
    assert sorted(split["classes"]) == ["clapping", "cycling", "dancing", "superseded-later"]
    assert (out.parent / "feedback.dvc").is_file()
