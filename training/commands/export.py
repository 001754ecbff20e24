"""A trained model folder → a harclip bundle, through `harclip.clip.export` (the layout
`harclip export` writes: ONNX, INT8, TorchScript, ...), with the trained head in place of the
zero-shot one (kind "fine-tuned") and the evaluation metrics in the manifest."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from harclip.model.bundle import Bundle
from training import progress
from training.config import ExportConfig
from training.model.classifier import load_trained


def export_trained(
    model_dir: Path,
    output: Path,
    cfg: ExportConfig,
    *,
    metrics: Mapping[str, Any] | None = None,
    validate: bool = True,
    show: bool = True,
) -> Bundle:
    """Write the bundle of the model in `model_dir` to `output`; `metrics` (e.g. the test
    report's headline with its split fingerprint) go into `manifest.json["metrics"]`."""
    from harclip.clip.export import ExportOptions, export_bundle, update_manifest

    with progress.step(f"load {model_dir}", enabled=show):
        clip, head, meta = load_trained(model_dir)
    clip = dataclasses.replace(clip, name=str(meta.get("base_model", clip.name)))
    formats = ["onnx", *cfg.formats]
    if _tensorrt_here():
        formats.append("tensorrt")  # "and TensorRT where installed"
    options = ExportOptions(
        formats=tuple(dict.fromkeys(formats)),
        label_set={label: head.prompts.get(label, [label]) for label in head.labels},
        name=cfg.name,
        version=cfg.version,
    )
    bundle = export_bundle(
        clip, output, options, step=lambda title: progress.step(title, enabled=show)
    )
    zero_shot = bundle.load_head()
    with progress.step("trained head -> head.safetensors + labels.json", enabled=show):
        bundle.save_head(dataclasses.replace(head, version=zero_shot.version + 1,
                                             kind="fine-tuned", created_at=_now()))  # fmt: skip
    doc: dict[str, Any] = dict(bundle.manifest.metrics)
    if metrics:
        doc["eval"] = dict(metrics)
    if meta:
        doc["training"] = {k: meta[k] for k in ("mode", "strategy", "epochs_run", "steps",
                                                "wise_alpha", "data") if k in meta}  # fmt: skip
    update_manifest(bundle, metrics=doc)
    if validate:
        from harclip.clip.validate import validate_bundle
        from harclip.config import load_settings

        with progress.step("validate every engine against PyTorch", enabled=show):
            report = validate_bundle(bundle, clip, load_settings())
        update_manifest(bundle, validation=report)
    return Bundle.load(output)


def _tensorrt_here() -> bool:
    """TensorRT installed and a CUDA device to build the plan on."""
    import importlib.util

    if importlib.util.find_spec("tensorrt") is None:
        return False
    import torch

    return bool(torch.cuda.is_available())


def _now() -> int:
    from harclip.messages import now_ms

    return now_ms()
