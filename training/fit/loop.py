"""The fine-tuning loop: the parts of a run (`build_parts`: the split, the wrapped model, its
optimizer and schedule, the data, the checkpointer) and `FitLoop`, which trains them epoch by
epoch with gradient accumulation, clipping, AMP, validation, early stopping and checkpoints."""

from __future__ import annotations

import contextlib
import csv
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
import torch
from torch import nn

from harclip.model.head import Head
from training import progress
from training.config import Config
from training.data.loader import BatchPlan, TrainImages, train_loader
from training.data.prepare import prepared_manifest
from training.data.split import Manifest
from training.errors import TrainingError
from training.evaluation.metrics import classification_metrics, cross_entropy
from training.evaluation.predict import predict_model, predictions_from_logits
from training.fit.checkpoint import Checkpointer, TrainState
from training.fit.distributed import Dist, amp_dtype, unwrap, wrap
from training.fit.optim import make_optimizer, make_scheduler
from training.fit.tracking import Trackers
from training.model.classifier import base_model, classifier, zero_shot_head


@dataclass
class Parts:
    """What one training run is made of, built before its first step."""

    manifest: Manifest
    base: str  # the CLIP folder the model starts from
    image_size: int
    head0: Head  # the zero-shot head the classifier starts from
    model: nn.Module  # wrapped for the strategy (DDP / FSDP)
    amp: torch.dtype | None
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler
    plan: BatchPlan
    loader: Iterable[Any]
    total_steps: int
    ckpt: Checkpointer


def build_parts(cfg: Config, d: Dist, show: bool) -> Parts:
    """The split, the model (wrapped), its optimizer and schedule, the data and the
    checkpointer of a run."""
    t = cfg.train
    amp = amp_dtype(t.amp, d.device, d.strategy)
    manifest = _manifest(cfg, d, show)
    base = _base_model(cfg, d)
    from harclip.clip.load import load_clip

    clip = load_clip(base)
    head0 = zero_shot_head(clip, manifest.classes)
    model = classifier(clip, head0)
    image_size = clip.image_size
    del clip  # the text tower is not trained: do not keep it in memory
    if t.mode == "linear-probe":
        model.encoder.requires_grad_(False)
    num_layers = model.num_layers
    wrapped = wrap(model, d, amp if d.strategy == "fsdp" else None)
    head_lr = t.head_lr or (t.lr if t.mode == "linear-probe" else 10 * t.lr)
    optimizer = make_optimizer(
        wrapped, num_layers,
        lr=t.lr, head_lr=head_lr, llrd=t.llrd, weight_decay=t.weight_decay,
    )  # fmt: skip
    train_files = manifest.paths("train")
    plan = BatchPlan(
        len(train_files), t.batch_size,
        world=d.world, rank=d.rank, accum=t.grad_accum, seed=t.seed,
    )  # fmt: skip
    dataset = TrainImages(train_files, manifest.label_ids("train"), image_size,
                          cfg.augment, t.seed)  # fmt: skip
    total_steps = t.epochs * plan.steps_per_epoch
    scheduler = make_scheduler(
        optimizer, total_steps, int(t.warmup_fraction * total_steps), t.min_lr_ratio
    )
    sharded = d.strategy == "fsdp" and t.fsdp_state_dict == "sharded"
    return Parts(
        manifest=manifest, base=base, image_size=image_size, head0=head0, model=wrapped,
        amp=amp, optimizer=optimizer, scheduler=scheduler,
        scaler=torch.amp.GradScaler(d.device.type, enabled=amp == torch.float16),
        plan=plan, loader=train_loader(dataset, plan, cfg.data.workers), total_steps=total_steps,
        ckpt=Checkpointer(cfg.output / "checkpoints", d, sharded=sharded,
                          keep=t.keep_checkpoints),
    )  # fmt: skip


def _manifest(cfg: Config, d: Dist, show: bool) -> Manifest:
    """Rank 0 prepares the split (or reads the given one); the others read what it wrote."""
    path = None
    if d.is_main:
        _, path = prepared_manifest(cfg, show=show)
    path = d.broadcast(path)
    from training.data.split import load_manifest

    manifest = load_manifest(path)
    if not manifest.items("train"):
        raise TrainingError(f"the train split of {path} is empty")
    return manifest


def _base_model(cfg: Config, d: Dist) -> str:
    name = None
    if d.is_main:
        name = base_model(cfg.model, cfg.output / "base-model", cfg.train.seed)
    return str(d.broadcast(name))


class FitLoop:
    """The training loop over the parts `build_parts` made: epochs of steps, validation, the best
    weights, checkpoints and history. `train()` runs (or resumes) it; the finetune command then
    saves, evaluates and exports."""

    def __init__(
        self, cfg: Config, d: Dist, show: bool, parts: Parts, state: TrainState, trackers: Trackers
    ) -> None:
        self.cfg, self.d, self.show = cfg, d, show
        self.out = cfg.output
        self.t = cfg.train
        self.p = parts
        self.amp = parts.amp
        self.state = state
        self.trackers = trackers
        self.step_lr = 0.0  # the head's learning rate at the last step (logged)

    # --- the loop ------------------------------------------------------------------------------

    def train(self) -> None:
        s, t = self.state, self.t
        steps_per_epoch = self.p.plan.steps_per_epoch
        stop_at = min(self.p.total_steps, t.max_steps or self.p.total_steps)
        if s.global_step >= stop_at or s.stopped_early:
            return
        progress.say(
            f"train: {self.t.mode} on {self.d.world} × {self.d.device} ({self.d.strategy}), "
            f"{self.p.plan.n} images, {steps_per_epoch} steps/epoch × {t.epochs} epochs, "
            f"batch {t.batch_size} (micro {self.p.plan.micro} × accum {t.grad_accum} × "
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
        self.p.plan.set_epoch(epoch, s.step_in_epoch)
        batches = iter(self.p.loader)
        start = time.perf_counter()
        loss_sum, correct, seen, steps = 0.0, 0, 0, 0
        for step in range(s.step_in_epoch, self.p.plan.steps_per_epoch):
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
                    "epoch": epoch + step / self.p.plan.steps_per_epoch,
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
        t, model = self.t, self.p.model
        self.p.optimizer.zero_grad(set_to_none=True)
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
                self.p.scaler.scale(loss).backward()  # type: ignore[no-untyped-call]
            loss_total += float(loss.item())
            hits += int((logits.argmax(dim=1) == labels).sum().item())
            n += len(labels)
        grad_norm = 0.0
        if t.grad_clip is not None:
            self.p.scaler.unscale_(self.p.optimizer)
            params = [p for p in model.parameters() if p.requires_grad]
            norm = torch.nn.utils.clip_grad_norm_(params, t.grad_clip)
            grad_norm = float(_full(norm))
        self.step_lr = float(self.p.optimizer.param_groups[-1]["lr"])  # the head's (last group)
        self.p.scaler.step(self.p.optimizer)
        self.p.scaler.update()
        self.p.scheduler.step()
        return loss_total, hits, n, grad_norm

    def _sync(self, last: bool) -> contextlib.AbstractContextManager[Any]:
        """DDP: all-reduce gradients only on the last micro-batch of a step."""
        if self.d.strategy == "ddp" and not last:
            return self.p.model.no_sync()  # type: ignore[operator,no-any-return]
        return contextlib.nullcontext()

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.amp is None or self.d.strategy == "fsdp":  # FSDP casts by its MixedPrecisionPolicy
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.d.device.type, dtype=self.amp)

    def _end_of_epoch(self, epoch: int) -> bool:
        """Validate, keep the best weights, log, checkpoint; True to stop early."""
        s = self.state
        record = s.history[-1]
        val_files = self.p.manifest.paths("val")
        if val_files:
            logits = predict_model(
                self._eval_model(), val_files, image_size=self.p.image_size,
                batch=self.t.eval_batch_size, d=self.d, amp=self.amp,
            )  # fmt: skip
            labels = np.array(self.p.manifest.label_ids("val"))
            probs = predictions_from_logits(logits, self.p.manifest, "val").probs
            m = classification_metrics(probs, labels, self.p.manifest.classes)
            record |= {"val_loss": cross_entropy(logits, labels), "val_accuracy": m["accuracy"],
                       "val_macro_f1": m["macro_f1"]}  # fmt: skip
            if s.best is None or m["accuracy"] > s.best:
                s.best, s.best_step, s.bad_epochs = m["accuracy"], s.global_step, 0
                self.p.ckpt.save_best(self.p.model)
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
        return unwrap(self.p.model) if self.d.strategy == "ddp" else self.p.model

    def _checkpoint(self) -> None:
        trainer = {
            "scheduler": self.p.scheduler.state_dict(),
            "scaler": self.p.scaler.state_dict() if self.p.scaler.is_enabled() else None,
            "config": self.cfg.dump(),
            "train_fingerprint": self.p.manifest.fingerprint("train"),
            "rng": torch.get_rng_state(),
        }
        self.p.ckpt.save(self.p.model, self.p.optimizer, trainer, self.state)

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
