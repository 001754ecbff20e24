"""`finetune`: the training task. Linear probe or full fine-tuning of the CLIP image tower with a
text-initialised head, on one process, DDP or FSDP; gradient accumulation, clipping, AMP,
warm-up + cosine with LLRD, early stopping on validation accuracy, resumable checkpoints,
WiSE-FT, tracking on rank 0. Rank 0 then saves `OUTPUT/model`, evaluates it on the test split
(`OUTPUT/eval`) and exports `OUTPUT/bundle`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from training import progress
from training.config import Config
from training.fit.checkpoint import TrainState, full_model_state
from training.fit.distributed import setup, teardown
from training.fit.finish import data_summary, final_eval, manifest_metrics, model_meta, wise_ft
from training.fit.loop import FitLoop, build_parts
from training.fit.resume import resume
from training.fit.tracking import start_trackers
from training.model.classifier import classifier, save_trained


@dataclass(frozen=True)
class FitResult:
    state: TrainState
    model_dir: Path | None = None  # rank 0
    metrics: dict[str, Any] | None = None  # test report (rank 0, when train.final_eval)
    bundle: Path | None = None  # rank 0, when export.after_train


def finetune(cfg: Config, *, show: bool = True) -> FitResult:
    """Run (or resume) the training described by `cfg` into `cfg.output`."""
    d = setup(cfg.train.strategy, cfg.train.device, cfg.train.threads)
    show = show and d.is_main
    try:
        torch.manual_seed(cfg.train.seed)
        parts = build_parts(cfg, d, show)
        state = resume(
            parts.ckpt, cfg, d, train_fingerprint=parts.manifest.fingerprint("train"),
            model=parts.model, optimizer=parts.optimizer, scheduler=parts.scheduler,
            scaler=parts.scaler, total_steps=parts.total_steps, show=show,
        )  # fmt: skip
        trackers = start_trackers(
            cfg.tracking, is_main=d.is_main, output=cfg.output,
            run_name=cfg.tracking.run_name or cfg.output.name,
            resume=state.tracking, config=cfg.dump(),
        )  # fmt: skip
        ok = False
        try:
            state.tracking = trackers.ids()
            trackers.log_params(cfg.dump() | {"data_summary": data_summary(parts.manifest)})
            run = FitLoop(cfg, d, show, parts, state, trackers)
            run.train()
            result = _finish(run)
            ok = True
            return result
        finally:
            trackers.finish(ok)
    finally:
        teardown(d)


def _finish(run: FitLoop) -> FitResult:
    """After training: the trained model (rank 0: `OUTPUT/model`), its test report and bundle."""
    s = run.state
    weights = full_model_state(run.p.model, run.d)  # collective under FSDP
    run.d.barrier()
    if not run.d.is_main:
        return FitResult(state=s)
    best = run.p.ckpt.load_best() if run.p.manifest.items("val") else None
    if best is not None:
        weights = best
    from harclip.clip.load import load_clip

    clip = load_clip(run.p.base)
    final = classifier(clip, run.p.head0)
    final.load_state_dict(weights)
    if run.t.wise_alpha is not None:
        final = wise_ft(final, run.p.base, run.p.head0, run.t.wise_alpha, show=run.show)
    model_dir = run.out / "model"
    meta = model_meta(run.cfg, run.d, s, run.p.manifest, restored_best=best is not None)
    with progress.step(f"save the trained model -> {model_dir}", enabled=run.show):
        save_trained(model_dir, clip, final.head(run.p.manifest.classes, version=1), meta)
    metrics = None
    if run.t.final_eval and run.p.manifest.items("test"):
        metrics = final_eval(
            final, run.p.manifest, run.out, run.trackers, device=run.d.device,
            image_size=run.p.image_size, batch=run.t.eval_batch_size, amp=run.amp,
            step=s.global_step, show=run.show,
        )  # fmt: skip
    bundle = None
    if run.cfg.export.after_train:
        from training.commands.export import export_trained

        bundle = export_trained(model_dir, run.out / "bundle", run.cfg.export,
                                metrics=metrics and manifest_metrics(run.p.manifest, metrics),
                                show=run.show).path  # fmt: skip
        run.trackers.log_artifacts(bundle, "bundle")
        progress.say(f"[green]bundle written to {bundle}[/]", enabled=run.show)
    return FitResult(state=s, model_dir=model_dir, metrics=metrics, bundle=bundle)
