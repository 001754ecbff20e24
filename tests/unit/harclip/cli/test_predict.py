"""`harclip predict` in-process: good and broken files, folders, JSON lines, exit status."""

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path

import pytest

from harclip.cli import main


@pytest.fixture
def images(tmp_path: Path, sample_photos: list[Path]) -> Path:
    folder = tmp_path / "imgs"
    (folder / "sub").mkdir(parents=True)
    for i, p in enumerate(sample_photos[::100]):  # 6 photos, one in a sub-folder
        shutil.copy(p, folder / ("sub" if i == 0 else ".") / f"ok{i}.jpg")
    return folder


def _broken(folder: Path) -> dict[str, str]:
    good = next(folder.glob("ok*.jpg")).read_bytes()
    sof = b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, 60000, 60000, 1) + b"\x01\x11\x00"
    files = {
        "empty.jpg": (b"", "empty input"),
        "truncated.jpg": (good[: len(good) // 2], "truncated JPEG data"),
        "random.png": (bytes(range(256)) * 4, "not an image"),
        "notes.jpg": (b"just some text\n", "not an image (looks like text)"),
        "bomb.jpg": (b"\xff\xd8" + sof + b"\xff\xda\x00\x02" + b"\0" * 64, "image too large"),
    }
    for name, (data, _) in files.items():
        (folder / name).write_bytes(data)
    return {name: reason for name, (_, reason) in files.items()}


def test_json_lines_good_and_broken(
    tiny_bundle: Path, images: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    reasons = _broken(images)
    missing = images / "missing.jpg"
    code = main(["predict", "--bundle", str(tiny_bundle), "--json", "--top-k", "3",
                 "--batch-size", "4", str(images), str(missing)])  # fmt: skip
    assert code == 1
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    by_name = {Path(r["path"]).name: r for r in rows}
    assert len(rows) == 6 + len(reasons) + 1
    for name, reason in reasons.items():
        assert reason in by_name[name]["error"], by_name[name]
    assert "No such file" in by_name["missing.jpg"]["error"]
    good = [r for r in rows if "error" not in r]
    assert len(good) == 6
    assert str(images / "sub" / "ok0.jpg") in {r["path"] for r in good}
    for r in good:
        assert len(r["top_k"]) == 3 and r["label"] == r["top_k"][0]["label"]
        assert 0.0 <= r["top_k"][2]["score"] <= r["score"] <= 1.0


def test_table_and_errors_on_stderr(
    tiny_bundle: Path, images: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (images / "broken.jpg").write_bytes(b"\xff\xd8\xff")
    assert main(["predict", "--bundle", str(tiny_bundle), str(images)]) == 1
    out, err = capsys.readouterr()
    assert "broken.jpg" in err and "truncated JPEG header" in err
    assert "ok1.jpg" in out and "broken.jpg" not in out
    (images / "broken.jpg").unlink()
    assert main(["predict", "--bundle", str(tiny_bundle), "--engine", "onnx-int8",
                 str(images)]) == 0  # fmt: skip


def test_model_source_is_required(
    images: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HARCLIP_MODEL__BUNDLE", raising=False)
    assert main(["predict", str(images)]) == 2
    assert "pass --bundle B or --model M" in capsys.readouterr().err


def test_bad_bundle_and_engine_are_clear(
    tmp_path: Path, images: Path, tiny_bundle: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["predict", "--bundle", str(tmp_path), str(images)]) == 2
    assert "manifest.json is missing" in capsys.readouterr().err
    assert main(["predict", "--bundle", str(tiny_bundle), "--engine", "tensorrt", str(images)]) == 2
    assert "tensorrt" in capsys.readouterr().err


def test_model_exports_a_temporary_bundle(
    tiny_model_dir: Path, images: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["predict", "--model", str(tiny_model_dir), "--json", str(images / "ok1.jpg")]) == 0
    row = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert row["path"].endswith("ok1.jpg") and row["label"]
