"""`evaluate`: the report of a trained model folder (PyTorch) or of any bundle (its engine and
head, as it serves), on one split of the manifest; both judged by the same report code."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from training import progress
from training.config import Config
from training.data.split import Manifest
from training.errors import DataError
from training.evaluation.report import Predictions, headline, write_report


def evaluate_command(
    cfg: Config,
    manifest: Manifest,
    split: str,
    out: Path,
    *,
    checkpoint: Path | None,
    bundle: Path | None,
    engine: str = "onnx",
    show: bool = True,
) -> dict[str, Any]:
    """Write the report of `bundle` (or of `checkpoint`, default OUTPUT/model) into `out`."""
    files = manifest.paths(split)
    if not files:
        raise DataError(f"split {split!r} of the manifest holds no images")
    with progress.bar(f"evaluate {split}", len(files), enabled=show) as advance:
        if bundle is not None:
            from training.evaluation.predict import predict_bundle

            preds = predict_bundle(bundle, manifest, split, engine=engine, progress=advance)
            what = f"bundle {bundle} ({engine})"
        else:
            model_dir = checkpoint or cfg.output / "model"
            preds = _predict_checkpoint(model_dir, manifest, split, cfg, advance)
            what = f"model {model_dir}"
    about = {"model": what, "split": split, "split_fingerprint": manifest.fingerprint(split)}
    return write_report(out, preds, title=f"Evaluation on the {split} split", about=about)


def manifest_metrics(metrics_file: Path) -> dict[str, Any]:
    """What a bundle manifest keeps of a report's metrics.json: the headline and the split."""
    doc = orjson.loads(metrics_file.read_bytes())
    return {"split": doc.get("split"), "split_fingerprint": doc.get("split_fingerprint"),
            **headline(doc)}  # fmt: skip


def _predict_checkpoint(
    model_dir: Path, manifest: Manifest, split: str, cfg: Config, advance: progress.Advance
) -> Predictions:
    from training.evaluation.predict import columns, predict_model, predictions_from_logits
    from training.fit.distributed import Dist, device_for
    from training.model.classifier import classifier, load_trained

    clip, head, _ = load_trained(model_dir)
    cols = columns(head, manifest.classes, str(model_dir))
    device = device_for(cfg.train.device, 0)
    model = classifier(clip, head).to(device)
    single = Dist("single", 1, 0, 0, device)
    logits = predict_model(model, manifest.paths(split), image_size=clip.image_size,
                           batch=cfg.train.eval_batch_size, d=single, progress=advance)  # fmt: skip
    return predictions_from_logits(logits[:, cols], manifest, split)
