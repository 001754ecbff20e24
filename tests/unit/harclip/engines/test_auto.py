"""`engine: auto`: INT8 only when its recorded validation passed, fp32 ONNX otherwise, GPU
engines in order where a CUDA device is asked for, and a reason for every choice."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from harclip.config import ModelSettings
from harclip.engines import auto as auto_mod
from harclip.engines import create_engine
from harclip.engines.auto import (
    INT8_MIN_COSINE,
    INT8_MIN_TOP1,
    cpu_choice,
    gpu_choices,
    int8_verdict,
    open_auto,
)
from harclip.engines.device import cuda_device_count, resolve_device
from harclip.model.bundle import Bundle


def _validated(top1: float = 1.0, cosine: float = 0.9998, **row: Any) -> dict[str, Any]:
    return {
        "images": 64,
        "source": "sample photos",
        "engines": {"onnx-int8": row or {"top1_agreement": top1, "min_cosine": cosine}},
    }


@pytest.fixture
def bundle(tiny_bundle: Path, tmp_path: Path) -> Bundle:
    """A writable copy of the tiny bundle (onnx, onnx-int8, torchscript, torch)."""
    copy = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, copy)
    return Bundle.load(copy)


def _with(bundle: Bundle, **changes: Any) -> Bundle:
    bundle.save_manifest(replace(bundle.manifest, **changes))
    return Bundle.load(bundle.path)


def test_int8_serves_only_when_its_validation_passed_both_thresholds(bundle: Bundle) -> None:
    m = bundle.manifest
    ok, why = int8_verdict(replace(m, validation=_validated()))
    assert ok and "top-1 agreement 100.0 %" in why and "64 sample photos" in why
    assert "(dynamic)" in why  # the tiny bundle's INT8 was not calibrated
    for top1, cosine in ((INT8_MIN_TOP1 - 0.01, 0.9999), (1.0, INT8_MIN_COSINE - 0.001)):
        ok, why = int8_verdict(replace(m, validation=_validated(top1, cosine)))
        assert not ok and "below the thresholds" in why


@pytest.mark.parametrize(
    ("validation", "says"),
    [
        ({}, "never validated"),
        (_validated(error="no GPU"), "validation failed: no GPU"),
        (_validated(min_cosine=0.999), "incomplete"),
    ],
)
def test_int8_without_a_usable_record_does_not_serve(
    bundle: Bundle, validation: dict[str, Any], says: str
) -> None:
    ok, why = int8_verdict(replace(bundle.manifest, validation=validation))
    assert not ok and says in why


def test_a_bundle_without_int8_says_how_to_add_it(bundle: Bundle) -> None:
    engines = {k: v for k, v in bundle.manifest.engines.items() if k != "onnx-int8"}
    ok, why = int8_verdict(replace(bundle.manifest, engines=engines, validation=_validated()))
    assert not ok and "--format int8" in why


def test_cpu_choice_and_the_engine_auto_opens(bundle: Bundle) -> None:
    settings = ModelSettings(device="cpu")
    assert cpu_choice(bundle, settings).name == "onnx"
    engine, why = open_auto(bundle, settings)
    try:
        assert (engine.name, engine.label) == ("onnx", "onnx") and "fp32 ONNX on CPU" in why
    finally:
        engine.close()
    bundle = _with(bundle, validation=_validated())
    engine = create_engine(bundle, "auto", settings)
    try:
        assert engine.name == "onnx-int8" and engine.label == "onnx-int8"
    finally:
        engine.close()


def test_auto_device_follows_the_driver() -> None:
    assert resolve_device("cpu") == "cpu" and resolve_device("cuda:1") == "cuda:1"
    assert resolve_device("auto") == ("cuda" if cuda_device_count() > 0 else "cpu")


def test_gpu_candidates_in_order_each_only_where_it_can_run(
    bundle: Bundle, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(auto_mod, "_ort_has_cuda", lambda: False)
    names = [(c.name, c.settings.device) for c in gpu_choices(bundle, ModelSettings(), "cuda")]
    assert names == [("torch", "cuda"), ("torchscript", "cuda")]  # no plan, no onnxruntime-gpu
    fp16 = next(gpu_choices(bundle, ModelSettings(), "cuda"))
    assert fp16.settings.torch_dtype == "fp16"
    monkeypatch.setattr(auto_mod, "_ort_has_cuda", lambda: True)
    first = next(gpu_choices(bundle, ModelSettings(), "cuda"))
    assert first.name == "onnx" and first.settings.providers == ("CUDAExecutionProvider",)


def test_on_a_cuda_device_that_cannot_run_auto_falls_back_to_cpu_and_says_why(
    bundle: Bundle, monkeypatch: pytest.MonkeyPatch
) -> None:
    if cuda_device_count() > 0:
        engine, why = open_auto(bundle, ModelSettings(device="cuda"))
        try:
            assert engine.label.endswith("/cuda"), why
        finally:
            engine.close()
        return
    monkeypatch.setattr(auto_mod, "_ort_has_cuda", lambda: False)
    bundle = _with(bundle, validation=_validated())
    engine, why = open_auto(bundle, ModelSettings(device="cuda"))
    try:
        assert engine.name == "onnx-int8"
        assert "skipped: torch:" in why and "no CUDA device" in why
    finally:
        engine.close()
