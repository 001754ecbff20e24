"""`finetune`: the training task. Linear probe or full fine-tuning of the CLIP image tower with a
text-initialised head, on one process, DDP or FSDP; gradient accumulation, clipping, AMP,
warm-up + cosine with LLRD, early stopping on validation accuracy, resumable checkpoints,
WiSE-FT, tracking on rank 0. Rank 0 then saves `OUTPUT/model`, evaluates it on the test split
(`OUTPUT/eval`) and exports `OUTPUT/bundle`.
"""

from __future__ import annotations

import contextlib
import csv
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import torch
from torch import nn

from training import progress
from training.checkpoint import Checkpointer, TrainState, full_model_state
from training.config import Config
from training.data.loader import BatchPlan, TrainImages, train_loader
from training.data.prepare import prepared_manifest
from training.data.split import Manifest
from training.distributed import Dist, amp_dtype, setup, teardown, unwrap, wrap
from training.errors import TrainingError
from training.evaluate import predict_model, predictions_from_logits
from training.finish import data_summary, final_eval, manifest_metrics, model_meta, wise_ft
from training.metrics import classification_metrics, cross_entropy
from training.model import base_model, classifier, zero_shot_head
from training.optim import make_optimizer, make_scheduler
from training.resume import resume
from training.tracking import start_trackers


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
        return _Run(cfg, d, show).run()
    finally:
        teardown(d)


class _Run:
    def __init__(self, cfg: Config, d: Dist, show: bool) -> None:
        self.cfg, self.d, self.show = cfg, d, show
        self.out = cfg.output
        self.t = cfg.train
        self.amp = amp_dtype(self.t.amp, d.device, d.strategy)

    # --- set-up --------------------------------------------------------------------------------

    def run(self) -> FitResult:
        torch.manual_seed(self.t.seed)
        self.manifest = self._manifest()
        self.base = self._base_model()
        from harclip.clip.load import load_clip

        clip = load_clip(self.base)
        self.image_size = clip.image_size
        self.head0 = zero_shot_head(clip, self.manifest.classes)
        model = classifier(clip, self.head0)
        del clip  # the text tower is not trained: do not keep it in memory
        if self.t.mode == "linear-probe":
            model.encoder.requires_grad_(False)
        self.num_layers = model.num_layers
        self.model = wrap(model, self.d, self.amp if self.d.strategy == "fsdp" else None)
        head_lr = self.t.head_lr or (self.t.lr if self.t.mode == "linear-probe" else 10 * self.t.lr)
        self.optimizer = make_optimizer(
            self.model, self.num_layers,
            lr=self.t.lr, head_lr=head_lr, llrd=self.t.llrd, weight_decay=self.t.weight_decay,
        )  # fmt: skip
        train_files = self.manifest.paths("train")
        self.plan = BatchPlan(
            len(train_files), self.t.batch_size,
            world=self.d.world, rank=self.d.rank, accum=self.t.grad_accum, seed=self.t.seed,
        )  # fmt: skip
        dataset = TrainImages(train_files, self.manifest.label_ids("train"), self.image_size,
                              self.cfg.augment, self.t.seed)  # fmt: skip
        self.loader = train_loader(dataset, self.plan, self.cfg.data.workers)
        self.total_steps = self.t.epochs * self.plan.steps_per_epoch
        warmup = int(self.t.warmup_fraction * self.total_steps)
        self.scheduler = make_scheduler(
            self.optimizer, self.total_steps, warmup, self.t.min_lr_ratio
        )
        self.scaler = torch.amp.GradScaler(self.d.device.type, enabled=self.amp == torch.float16)
        sharded = self.d.strategy == "fsdp" and self.t.fsdp_state_dict == "sharded"
        self.ckpt = Checkpointer(
            self.out / "checkpoints", self.d, sharded=sharded, keep=self.t.keep_checkpoints
        )
        self.state = resume(
            self.ckpt, self.cfg, self.d, train_fingerprint=self.manifest.fingerprint("train"),
            model=self.model, optimizer=self.optimizer, scheduler=self.scheduler,
            scaler=self.scaler, total_steps=self.total_steps, show=self.show,
        )  # fmt: skip
        self.trackers = start_trackers(
            self.cfg.tracking, is_main=self.d.is_main, output=self.out,
            run_name=self.cfg.tracking.run_name or self.out.name,
            resume=self.state.tracking, config=self.cfg.dump(),
        )  # fmt: skip
        ok = False
        try:
            self.state.tracking = self.trackers.ids()
            self.trackers.log_params(
                self.cfg.dump() | {"data_summary": data_summary(self.manifest)}
            )
            self._train()
            result = self._finish()
            ok = True
            return result
        finally:
            self.trackers.finish(ok)

    def _manifest(self) -> Manifest:
        """Rank 0 prepares the split (or reads the given one); the others read what it wrote."""
        path = None
        if self.d.is_main:
            _, path = prepared_manifest(self.cfg, show=self.show)
        path = self.d.broadcast(path)
        from training.data.split import load_manifest

        manifest = load_manifest(path)
        if not manifest.items("train"):
            raise TrainingError(f"the train split of {path} is empty")
        return manifest

    def _base_model(self) -> str:
        name = None
        if self.d.is_main:
            name = base_model(self.cfg.model, self.out / "base-model", self.t.seed)
        return str(self.d.broadcast(name))

    # --- the loop ------------------------------------------------------------------------------

    def _train(self) -> None:
        s, t = self.state, self.t
        steps_per_epoch = self.plan.steps_per_epoch
        stop_at = min(self.total_steps, t.max_steps or self.total_steps)
        if s.global_step >= stop_at or s.stopped_early:
            return
        progress.say(
            f"train: {self.t.mode} on {self.d.world} × {self.d.device} ({self.d.strategy}), "
            f"{self.plan.n} images, {steps_per_epoch} steps/epoch × {t.epochs} epochs, "
            f"batch {t.batch_size} (micro {self.plan.micro} × accum {t.grad_accum} × "
            f"{self.d.world} ranks), amp {self.amp or 'off'}", enabled=self.show,
        )  # fmt: skip
        with progress.bar("train", stop_at, enabled=self.show) as advance:
            advance(s.global_step)
            for epoch in range(s.epoch, t.epochs):
                s.epoch = epoch
                finished = self._epoch(epoch, stop_at, advance)
                if not finished:
                    break
                if self._end_of_epoch(epoch):
                    s.stopped_early = True
                    progress.say(
                        f"early stop: no better validation accuracy for {s.bad_epochs} epochs "
                        f"(best {s.best:.4f} at step {s.best_step})", enabled=self.show,
                    )  # fmt: skip
                    break
        if s.step_in_epoch != 0:
            self._checkpoint()  # stopped by train.max_steps inside an epoch

    def _epoch(self, epoch: int, stop_at: int, advance: Any) -> bool:
        """Train the rest of `epoch`; False when `stop_at` came first."""
        s, t = self.state, self.t
        self.plan.set_epoch(epoch, s.step_in_epoch)
        batches = iter(self.loader)
        start = time.perf_counter()
        loss_sum, correct, seen, steps = 0.0, 0, 0, 0
        for step in range(s.step_in_epoch, self.plan.steps_per_epoch):
            if s.global_step >= stop_at:
                return False
            loss, hits, n, grad_norm = self._step(batches)
            loss_sum, correct, seen, steps = loss_sum + loss, correct + hits, seen + n, steps + 1
            s.global_step += 1
            s.step_in_epoch = step + 1
            if s.global_step % t.log_every_steps == 0 or s.global_step == stop_at:
                metrics = {
                    "train/loss": self.d.mean(loss),
                    "train/lr": self.step_lr,
                    "train/grad_norm": grad_norm,
                    "epoch": epoch + step / self.plan.steps_per_epoch,
                }
                self.trackers.log_metrics(metrics, s.global_step)
            advance(1, info=f"epoch {epoch + 1}/{t.epochs} loss {loss:.3f}")
            if t.checkpoint_every_steps and s.global_step % t.checkpoint_every_steps == 0:
                self._checkpoint()
        seconds = time.perf_counter() - start
        record: dict[str, Any] = {
            "epoch": epoch + 1, "step": s.global_step,
            "train_loss": self.d.mean(loss_sum / max(1, steps)),
            "train_accuracy": self.d.mean(correct / max(1, seen)),
            "seconds": seconds, "images_per_s": self.d.mean(seen / seconds) * self.d.world,
        }  # fmt: skip
        s.history.append(record)
        s.epoch, s.step_in_epoch = epoch + 1, 0
        return True

    def _step(self, batches: Iterator[Any]) -> tuple[float, int, int, float]:
        """One optimizer step over `grad_accum` micro-batches: (loss, hits, images, grad norm)."""
        t, model = self.t, self.model
        self.optimizer.zero_grad(set_to_none=True)
        loss_total, hits, n = 0.0, 0, 0
        for k in range(t.grad_accum):
            images, labels = next(batches)
            images, labels = images.to(self.d.device), labels.to(self.d.device)
            with self._sync(k == t.grad_accum - 1):
                with self._autocast():
                    logits = model(images)  # [B, S, S, 3] -> [B, C]
                    loss = (
                        nn.functional.cross_entropy(
                            logits.float(), labels, label_smoothing=t.label_smoothing
                        )
                        / t.grad_accum
                    )
                self.scaler.scale(loss).backward()  # type: ignore[no-untyped-call]
            loss_total += float(loss.item())
            hits += int((logits.argmax(dim=1) == labels).sum().item())
            n += len(labels)
        grad_norm = 0.0
        if t.grad_clip is not None:
            self.scaler.unscale_(self.optimizer)
            params = [p for p in model.parameters() if p.requires_grad]
            norm = torch.nn.utils.clip_grad_norm_(params, t.grad_clip)
            grad_norm = float(_full(norm))
        self.step_lr = float(self.optimizer.param_groups[-1]["lr"])  # the head's (last group)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        return loss_total, hits, n, grad_norm

    def _sync(self, last: bool) -> contextlib.AbstractContextManager[Any]:
        """DDP: all-reduce gradients only on the last micro-batch of a step."""
        if self.d.strategy == "ddp" and not last:
            return self.model.no_sync()  # type: ignore[operator,no-any-return]
        return contextlib.nullcontext()

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.amp is None or self.d.strategy == "fsdp":  # FSDP casts by its MixedPrecisionPolicy
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.d.device.type, dtype=self.amp)

    def _end_of_epoch(self, epoch: int) -> bool:
        """Validate, keep the best weights, log, checkpoint; True to stop early."""
        s = self.state
        record = s.history[-1]
        val_files = self.manifest.paths("val")
        if val_files:
            logits = predict_model(
                self._eval_model(), val_files, image_size=self.image_size,
                batch=self.t.eval_batch_size, d=self.d, amp=self.amp,
            )  # fmt: skip
            labels = np.array(self.manifest.label_ids("val"))
            probs = predictions_from_logits(logits, self.manifest, "val").probs
            m = classification_metrics(probs, labels, self.manifest.classes)
            record |= {"val_loss": cross_entropy(logits, labels), "val_accuracy": m["accuracy"],
                       "val_macro_f1": m["macro_f1"]}  # fmt: skip
            if s.best is None or m["accuracy"] > s.best:
                s.best, s.best_step, s.bad_epochs = m["accuracy"], s.global_step, 0
                self.ckpt.save_best(self.model)
            else:
                s.bad_epochs += 1
        self.trackers.log_metrics({k: float(v) for k, v in record.items() if k != "step"},
                                  s.global_step)  # fmt: skip
        progress.say(_epoch_line(record, self.t.epochs), enabled=self.show)
        self._write_history()
        patience = self.t.early_stopping_patience
        stop = bool(val_files) and patience is not None and s.bad_epochs >= patience
        self._checkpoint()
        return stop

    def _eval_model(self) -> nn.Module:
        return unwrap(self.model) if self.d.strategy == "ddp" else self.model

    def _checkpoint(self) -> None:
        trainer = {
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else None,
            "config": self.cfg.dump(),
            "train_fingerprint": self.manifest.fingerprint("train"),
            "rng": torch.get_rng_state(),
        }
        self.ckpt.save(self.model, self.optimizer, trainer, self.state)

    def _write_history(self) -> None:
        """`history.jsonl` and `history.csv` (for `dvc plots`): one row per epoch."""
        if not self.d.is_main:
            return
        rows = self.state.history
        (self.out / "history.jsonl").write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
        keys = list(dict.fromkeys(k for r in rows for k in r))
        with (self.out / "history.csv").open("w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, keys)
            writer.writeheader()
            writer.writerows(rows)

    # --- after training (rank 0) ---------------------------------------------------------------

    def _finish(self) -> FitResult:
        s = self.state
        weights = full_model_state(self.model, self.d)  # collective under FSDP
        self.d.barrier()
        if not self.d.is_main:
            return FitResult(state=s)
        best = self.ckpt.load_best() if self.manifest.items("val") else None
        if best is not None:
            weights = best
        from harclip.clip.load import load_clip

        clip = load_clip(self.base)
        final = classifier(clip, self.head0)
        final.load_state_dict(weights)
        if self.t.wise_alpha is not None:
            final = wise_ft(final, self.base, self.head0, self.t.wise_alpha, show=self.show)
        model_dir = self.out / "model"
        from training.model import save_trained

        meta = model_meta(self.cfg, self.d, s, self.manifest, restored_best=best is not None)
        with progress.step(f"save the trained model -> {model_dir}", enabled=self.show):
            save_trained(model_dir, clip, final.head(self.manifest.classes, version=1), meta)
        metrics = None
        if self.t.final_eval and self.manifest.items("test"):
            metrics = final_eval(
                final, self.manifest, self.out, self.trackers, device=self.d.device,
                image_size=self.image_size, batch=self.t.eval_batch_size, amp=self.amp,
                step=s.global_step, show=self.show,
            )  # fmt: skip
        bundle = None
        if self.cfg.export.after_train:
            from training.export import export_trained

            bundle = export_trained(model_dir, self.out / "bundle", self.cfg.export,
                                    metrics=metrics and manifest_metrics(self.manifest, metrics),
                                    show=self.show).path  # fmt: skip
            self.trackers.log_artifacts(bundle, "bundle")
            progress.say(f"[green]bundle written to {bundle}[/]", enabled=self.show)
        return FitResult(state=s, model_dir=model_dir, metrics=metrics, bundle=bundle)


def _full(t: torch.Tensor) -> torch.Tensor:
    """A DTensor (FSDP's grad norm) as a plain tensor."""
    full = getattr(t, "full_tensor", None)
    return full() if callable(full) else t


def _epoch_line(r: dict[str, Any], epochs: int) -> str:
    line = (f"epoch {r['epoch']}/{epochs}: train loss {r['train_loss']:.4f} "
            f"acc {r['train_accuracy']:.2%}")  # fmt: skip
    if "val_accuracy" in r:
        line += f" | val loss {r['val_loss']:.4f} acc {r['val_accuracy']:.2%}"
    return line + f" | {r['images_per_s']:.0f} img/s, {r['seconds']:.1f} s"
