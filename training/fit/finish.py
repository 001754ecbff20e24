"""After training, on rank 0: WiSE-FT of the final weights, the model's `training.json` metadata,
and the evaluation on the test split (`OUTPUT/eval`) with its headline for the bundle manifest."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from training import progress
from training.config import Config
from training.data.split import Manifest
from training.evaluation.predict import predict_model, predictions_from_logits
from training.fit.checkpoint import TrainState
from training.fit.distributed import Dist
from training.fit.tracking import Trackers
from training.model.classifier import ClipClassifier, classifier

if TYPE_CHECKING:
    import torch

    from harclip.model.head import Head


def data_summary(manifest: Manifest) -> dict[str, Any]:
    """Class and image counts per split and the train split's fingerprint."""
    return {"classes": len(manifest.classes), **manifest.counts(),
            "train_fingerprint": manifest.fingerprint("train")}  # fmt: skip


def wise_ft(
    final: ClipClassifier, base: str, head0: Head, alpha: float, *, show: bool
) -> ClipClassifier:
    """`final` with its weights interpolated towards the zero-shot classifier (`base` with the
    text head `head0`); alpha 1 keeps the fine-tuned weights."""
    from harclip.clip.load import load_clip
    from training.model.wise import interpolate

    zero_shot = classifier(load_clip(base), head0).state_dict()
    final.load_state_dict(interpolate(zero_shot, final.state_dict(), alpha))
    progress.say(f"WiSE-FT: alpha {alpha} (fine-tuned) + {1 - alpha:g} (zero-shot)",
                 enabled=show)  # fmt: skip
    return final


def model_meta(
    cfg: Config, d: Dist, state: TrainState, manifest: Manifest, *, restored_best: bool
) -> dict[str, Any]:
    """What the trained model's `training.json` says about the run that made it."""
    s, t = state, cfg.train
    scratch = cfg.model.scratch
    return {
        "base_model": cfg.model.name if scratch is None else
        f"scratch:{scratch.vision_width}w{scratch.vision_layers}L-p{scratch.patch_size}"
        f"@{scratch.vision_image_size}px",
        "mode": t.mode, "strategy": d.strategy, "world": d.world,
        "epochs_run": s.epoch, "steps": s.global_step, "stopped_early": s.stopped_early,
        "restored_best": restored_best, "best_val_accuracy": s.best,
        "wise_alpha": t.wise_alpha, "resumed_at": s.resumed_at,
        "data": {"source": manifest.source, **data_summary(manifest)},
        "history": s.history, "config": cfg.dump(),
    }  # fmt: skip


def final_eval(
    final: ClipClassifier,
    manifest: Manifest,
    output: Path,
    trackers: Trackers,
    *,
    device: torch.device,
    image_size: int,
    batch: int,
    amp: torch.dtype | None,
    step: int,
    show: bool,
) -> dict[str, Any]:
    """Evaluate `final` on the test split into `output/eval` (one process, on `device`), log it
    at global step `step`; returns the metrics."""
    from training.evaluation.report import write_report

    single = Dist("single", 1, 0, 0, device)
    files = manifest.paths("test")
    with progress.bar("evaluate test", len(files), enabled=show) as advance:
        logits = predict_model(final.to(device), files, image_size=image_size,
                               batch=batch, d=single, amp=amp,
                               progress=advance)  # fmt: skip
    preds = predictions_from_logits(logits, manifest, "test")
    out = output / "eval"
    about = {"model": str(output / "model"), "split": "test",
             "split_fingerprint": manifest.fingerprint("test")}  # fmt: skip
    metrics = write_report(out, preds, title="Evaluation on the test split", about=about)
    trackers.log_summary({f"test/{k}": v for k, v in _headline(metrics).items()})
    trackers.log_images(sorted(out.glob("*.png")), step)
    trackers.log_artifacts(out, "eval")
    progress.say(
        f"test: accuracy {metrics['accuracy']:.2%}, macro-F1 {metrics['macro_f1']:.4f}, "
        f"top-5 {metrics['top5_accuracy']:.2%} on {metrics['n']} images -> {out}",
        enabled=show,
    )  # fmt: skip
    return metrics


def manifest_metrics(manifest: Manifest, metrics: dict[str, Any]) -> dict[str, Any]:
    """The test metrics' headline as the bundle manifest keeps it."""
    return {"split": "test", "split_fingerprint": manifest.fingerprint("test"),
            **_headline(metrics)}  # fmt: skip


def _headline(metrics: dict[str, Any]) -> dict[str, float]:
    from training.evaluation.report import headline

    return headline(metrics)
