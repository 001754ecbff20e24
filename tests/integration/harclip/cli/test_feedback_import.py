"""`harclip feedback import` on real Elasticsearch and the object store: a few labelled sample
photos become `correct` verdicts with unit embeddings and their JPEGs, a bad row is reported by
its line while the rest is imported, and `harclip feedback list` shows them."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import numpy as np
import pytest

from harclip.cli import feedback
from harclip.io.es import make_es
from harclip.io.objects import ObjectStore
from tests.support.scoped import Unique


async def test_import_a_labelled_folder(
    unique: Unique, tiny_bundle: Path, sample_data: Path, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    s = unique.settings
    src = sample_data / "har-sample"
    lines = (src / "labels.csv").read_text().splitlines()
    picked = [lines[1], lines[80], lines[160]]  # three labels
    for row in picked:
        rel = row.split(",")[0]
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src / rel, tmp_path / rel)
    (tmp_path / "labels.csv").write_text("\n".join(["path,label", *picked, "gone.jpg,eating"]))
    stream = unique.name("import")
    args = argparse.Namespace(action="import", source=tmp_path, stream=stream, name="sample",
                              bundle=tiny_bundle, batch_size=2)  # fmt: skip
    assert await feedback._import(args, s) == 1  # one bad row
    err = capsys.readouterr().err
    assert "line 5: no file 'gone.jpg'" in err
    assert "imported 3/3" in err

    es = make_es(s.elasticsearch)
    store = ObjectStore(s.objects)
    await store.start()
    try:
        hits = (await es.search(index=s.elasticsearch.feedback_index, size=10))["hits"]["hits"]
        docs = [h["_source"] for h in hits]
        assert sorted(d["label"] for d in docs) == sorted(r.split(",")[1] for r in picked)
        for d in docs:
            assert (d["verdict"], d["by"], d["stream_id"]) == ("correct", "import:sample", stream)
            assert np.linalg.norm(d["embedding"]) == pytest.approx(1.0, abs=1e-4)
            assert d["frame_id"].startswith("import-")
            stored = await store.get(d["image"])
            assert stored is not None and stored.data[:2] == b"\xff\xd8"
    finally:
        await es.close()
        await store.close()

    listed = argparse.Namespace(action="list", stream=stream, label=None, verdict=None, limit=10)
    assert await feedback._list(listed, s) == 0
    out = capsys.readouterr().out
    assert out.count("import:sample") == 3
