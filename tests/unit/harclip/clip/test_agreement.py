"""The margin-aware INT8 check: disagreements count only where fp32's top-1 margin is over twice
the score error the engine shows, and the verdict of fresh exports does not flip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from harclip.clip.agreement import ERROR_QUANTILE, MARGIN_FACTOR, compare, compare_scores
from harclip.clip.export import ExportOptions, export_bundle
from harclip.clip.init import init_model
from harclip.clip.load import load_clip
from harclip.engines.auto import int8_verdict


def test_near_ties_do_not_count_decisive_flips_do() -> None:
    rng = np.random.default_rng(0)
    ref = rng.normal(0, 1, (200, 5))
    ref[:, 0] += 10  # class 0 wins by a wide margin everywhere ...
    ref[:10, 1] = ref[:10, 0] - 0.001  # ... except 10 near-ties with class 1
    noise = rng.uniform(-0.01, 0.01, ref.shape)
    got = ref + noise
    got[:10, 1] = got[:10, 0] + 0.001  # every near-tie flips
    a = compare_scores(ref, got)
    assert a.top1_agreement == pytest.approx(190 / 200)  # the raw figure sees 10 flips
    assert a.error_bound == pytest.approx(np.quantile(np.abs(ref - got), ERROR_QUANTILE))
    assert a.error_bound <= 0.011
    assert a.decisive == 190 and a.decisive_agreement == 1.0  # the ties are not decisive
    # a flip on a wide margin counts
    got[50, 2] = got[50, 0] + 1
    b = compare_scores(ref, got)
    assert b.decisive == 190 and b.decisive_agreement == pytest.approx(189 / 190)


def test_decisive_means_margin_over_twice_the_bound() -> None:
    ref = np.array([[1.0, 0.0], [1.0, 0.9], [1.0, 0.95]] * 100)
    got = ref + np.where(np.arange(600).reshape(300, 2) % 2 == 0, 0.03, -0.03)
    a = compare_scores(ref, got)
    assert a.error_bound == pytest.approx(0.03)
    margins = np.array([1.0, 0.1, 0.05] * 100)
    assert a.decisive == int((margins > MARGIN_FACTOR * 0.03).sum()) == 200
    assert a.as_dict()["decisive_images"] == 200


def test_no_decisive_image_leaves_the_verdict_to_the_cosine() -> None:
    ref = np.array([[1.0, 1.0], [0.5, 0.5]])
    a = compare_scores(ref, ref[:, ::-1] + [0.1, 0], min_cosine=0.5)
    assert a.decisive == 0 and a.decisive_agreement == 1.0 and a.min_cosine == 0.5


def test_bad_shapes_are_refused() -> None:
    with pytest.raises(ValueError, match="match"):
        compare_scores(np.zeros((2, 3)), np.zeros((2, 4)))
    with pytest.raises(ValueError, match="C>=2"):
        compare_scores(np.zeros((2, 1)), np.zeros((2, 1)))
    with pytest.raises(ValueError, match="non-empty"):
        compare(np.zeros((0, 2)), np.zeros((0, 2)), None)  # type: ignore[arg-type]


def test_five_fresh_exports_of_random_models_make_the_same_choice(
    sample_data: Path, tmp_path: Path
) -> None:
    """The hard case: random weights, a zero-shot head full of near-ties, checked on the sample
    photos the calibration did not see (568 of 600, 512 used)."""
    verdicts = []
    for seed in range(5):
        clip = load_clip(init_model(tmp_path / f"clip{seed}", "tiny", seed=seed))
        options = ExportOptions(formats=("onnx", "int8"), calibration=sample_data / "har-sample",
                                calibration_images=32, int8_seconds=0.05)  # fmt: skip
        bundle = export_bundle(clip, tmp_path / f"b{seed}", options)
        row = bundle.manifest.validation["engines"]["onnx-int8"]
        assert bundle.manifest.validation["images"] >= 500
        assert {"top1_agreement", "decisive_agreement", "error_bound", "min_cosine"} <= row.keys()
        verdicts.append(int8_verdict(bundle.manifest)[0])
    assert verdicts == [True] * 5, verdicts
