"""The watch evaluation's pure parts: reading a labelled set, playing scores as streams."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest

from harclip.config import Settings
from harclip.watches import WatchSpec
from harclip.watches.evaluate import (
    EvalError,
    Play,
    configure,
    evaluate_watch,
    load_labelled,
    run,
    summary,
)


def test_a_labelled_set_from_csv_or_subfolders(tmp_path: Path) -> None:
    for lb in ("a", "b"):
        (tmp_path / lb).mkdir()
        (tmp_path / lb / "1.jpg").write_bytes(b"x")
    assert sorted(lb for _, lb in load_labelled(tmp_path)) == ["a", "b"]
    (tmp_path / "labels.csv").write_text("path,label\na/1.jpg,a\nb/1.jpg,b\n")
    assert load_labelled(tmp_path / "labels.csv")[0] == (tmp_path / "a/1.jpg", "a")
    (tmp_path / "bad.csv").write_text("file,class\n")
    with pytest.raises(EvalError, match="path,label"):
        load_labelled(tmp_path / "bad.csv")
    with pytest.raises(EvalError, match="no such"):
        load_labelled(tmp_path / "missing")


def test_calibration_keeps_background_streams_near_their_target_where_raw_does_not() -> None:
    """Background classes at different score levels (a drift between cameras): the raw
    threshold fires all the time on the high ones; the calibrated one stays within target."""
    rng = np.random.default_rng(0)
    per_label = {f"c{i}": rng.normal(0.2 + 0.06 * i, 0.03, 40).clip(0, 1) for i in range(6)}
    per_label["target"] = rng.normal(0.85, 0.05, 40).clip(0, 1)
    spec = WatchSpec(name="t", prompts=["x"], false_alarms_per_hour=10, threshold=0.4)
    r = evaluate_watch(spec, "target", per_label, Play(fps=2, minutes=120, episode_every_s=1200))
    cal, raw = r["calibrated"], r["raw"]
    assert cal["false_alarms_per_hour"] <= 10 * 1.5
    assert raw["false_alarms_per_hour"] > 10  # over the target (the cooldown caps it)
    assert cal["recall"] > 0.7  # a target far above the baselines
    assert cal["streams_over_target"] == 0 and raw["streams_over_target"] > 0
    s = summary([r])
    assert s["target_per_hour"] == 10 and s["false_alarms_per_hour"] <= 15


def test_bad_parameters_are_named() -> None:
    with pytest.raises(EvalError, match="fps"):
        Play(fps=0).check()
    with pytest.raises(EvalError, match="target class 'nope'"):
        evaluate_watch(WatchSpec(name="t", prompts=["x"]), "nope", {"a": np.zeros(2)}, Play())


def test_the_command_refuses_a_bad_watch_naming_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    parser = argparse.ArgumentParser()
    configure(parser)
    args = parser.parse_args(["--data", str(tmp_path), "--watch", "BAD NAME", "--prompt", "x"])
    assert run(args, Settings()) == 2
    assert "watch field name" in capsys.readouterr().out
