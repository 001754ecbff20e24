"""INT8: static QDQ calibrated on photos next to dynamic, the rule that keeps one, and the
record `engine: auto` reads."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest

from harclip.cli import main as harclip_main
from harclip.clip.agreement import Agreement
from harclip.clip.export import ExportOptions, export_bundle
from harclip.clip.load import load_clip
from harclip.clip.quantize import (
    Int8Figures,
    calibration_images,
    pick_int8,
    quantize_static_int8,
    spread,
)
from harclip.engines.auto import int8_verdict
from harclip.engines.onnx import OnnxEngine
from harclip.errors import ModelError
from harclip.model.bundle import Bundle


@pytest.fixture(scope="module")
def photos(sample_photos: list[Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of 24 sample photos from every class (enough to hold 8 out of calibration)."""
    folder = tmp_path_factory.mktemp("calibration")
    for p in spread(sample_photos, 24):
        (folder / p.parent.name).mkdir(exist_ok=True)
        shutil.copy(p, folder / p.parent.name / p.name)
    return folder


def test_spread_picks_evenly_and_offsets_pick_others() -> None:
    items = list(range(100))
    assert spread(items, 4) == [0, 25, 50, 75]
    assert spread(items, 4, offset=0.5) == [12, 37, 62, 87]
    assert spread(items[:3], 4) == [0, 1, 2]


def _f(img_per_s: float, top1: float, cosine: float = 0.9995, decisive: int = 64) -> Int8Figures:
    agreement = Agreement(512, 0.01, cosine, 0.9, 0.05, decisive, top1)
    return Int8Figures(img_per_s, 1000 / img_per_s, agreement)


def test_the_faster_is_kept_at_equal_agreement_else_the_more_accurate() -> None:
    kind, why = pick_int8({"dynamic": _f(100, 1.0), "static": _f(130, 1.0)})
    assert kind == "static" and "equal agreement" in why and "1.30x" in why
    # one decisive image of 64 apart is equal agreement
    assert pick_int8({"dynamic": _f(100, 1.0), "static": _f(130, 63 / 64)})[0] == "static"
    # two images apart is not: the more accurate one stays
    assert pick_int8({"dynamic": _f(100, 1.0), "static": _f(130, 62 / 64)})[0] == "dynamic"
    # the raw agreement (0.9 in both here) does not decide; the margin-aware one does
    assert _f(1, 1.0).as_dict()["top1_agreement"] == 0.9
    # passing auto's thresholds beats failing them, however fast
    kind, why = pick_int8({"dynamic": _f(100, 1.0), "static": _f(200, 1.0, cosine=0.95)})
    assert kind == "dynamic" and "agrees better" in why


def test_static_int8_is_qdq_and_close_to_fp32(
    tiny_bundle: Path, photos: Path, tmp_path: Path
) -> None:
    b = Bundle.load(tiny_bundle)
    size, dim = b.manifest.image_size, b.manifest.embed_dim
    images, read = calibration_images(photos, size, max_pixels=10**8, n=8)
    assert images.shape == (8, size, size, 3) and read == 8
    out = tmp_path / "static.onnx"
    quantize_static_int8(b.engine_file("onnx"), out, images)
    ops = {n.op_type for n in onnx.load(str(out)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    check, _ = calibration_images(photos, size, max_pixels=10**8, n=24)
    fp32 = OnnxEngine(b.engine_file("onnx"), image_size=size, embed_dim=dim).embed(check)
    int8 = OnnxEngine(out, name="onnx-int8", image_size=size, embed_dim=dim).embed(check)
    assert float((fp32 * int8).sum(axis=1).min()) >= 0.98


def test_export_with_calibration_builds_both_keeps_one_and_records_why(
    tiny_model_dir: Path, photos: Path, tmp_path: Path
) -> None:
    options = ExportOptions(formats=("onnx", "int8"), calibration=photos, calibration_images=8,
                            int8_seconds=0.05)  # fmt: skip
    bundle = export_bundle(load_clip(tiny_model_dir), tmp_path / "b", options)
    int8 = bundle.manifest.metrics["int8"]
    assert int8["kept"] in ("dynamic", "static") and int8["why"]
    assert int8["calibration"]["images"] == 8
    assert int8["check"]["images"] == 16 and "held-out" in int8["check"]["source"]
    for kind in ("dynamic", "static"):
        assert int8[kind]["img_per_s"] > 0 and 0 <= int8[kind]["top1_agreement"] <= 1
        assert int8[kind]["min_cosine"] >= 0.98 and int8[kind]["error_bound"] > 0
        assert 0 <= int8[kind]["decisive_images"] <= 16
    row = bundle.manifest.validation["engines"]["onnx-int8"]
    assert row["min_cosine"] == int8[int8["kept"]]["min_cosine"]
    assert row["decisive_agreement"] == int8[int8["kept"]]["decisive_agreement"]
    assert sorted(p.name for p in bundle.path.glob("encoder*.onnx")) == [
        "encoder.int8.onnx", "encoder.onnx",
    ]  # fmt: skip
    ok, why = int8_verdict(bundle.manifest)
    assert f"({int8['kept']})" in why and ok == (
        row["decisive_agreement"] >= 0.98 and row["min_cosine"] >= 0.99
    )


def test_calibration_needs_images(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="holds no images"):
        calibration_images(tmp_path, 32, max_pixels=10**8)
    with pytest.raises(ModelError, match="not a folder"):
        calibration_images(tmp_path / "missing", 32, max_pixels=10**8)
    with pytest.raises(ModelError, match="needs calibration images"):
        quantize_static_int8(tmp_path / "a.onnx", tmp_path / "b.onnx", np.zeros((0, 8, 8, 3)))


def test_cli_refuses_calibration_without_int8(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = harclip_main(["export", "--model", str(tmp_path), "--output", str(tmp_path / "o"),
                         "--calibration", str(tmp_path)])  # fmt: skip
    assert code == 2 and "add int8 to --format" in capsys.readouterr().err
