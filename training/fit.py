"""`finetune`: the training task. Linear probe or full fine-tuning of the CLIP image tower with a
text-initialised head, on one process, DDP or FSDP; gradient accumulation, clipping, AMP,
warm-up + cosine with LLRD, early stopping on validation accuracy, resumable checkpoints,
WiSE-FT, tracking on rank 0. Rank 0 then saves `OUTPUT/model`, evaluates it on the test split
(`OUTPUT/eval`) and exports `OUTPUT/bundle`.
"""

from __future__ import annotations

import contextlib
import csv
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import torch
from torch import nn

from harclip.errors import ConfigError
from training import progress
from training.checkpoint import Checkpointer, TrainState, full_model_state
from training.config import Config
from training.data.loader import BatchPlan, TrainImages, train_loader
from training.data.prepare import prepared_manifest
from training.data.split import Manifest
from training.distributed import Dist, setup, teardown, unwrap, wrap
from training.errors import TrainingError
from training.evaluate import predict_model, predictions_from_logits
from training.metrics import classification_metrics
from training.model import ClipClassifier, base_model, classifier, zero_shot_head
from training.optim import make_optimizer, make_scheduler
from training.tracking import start_trackers

# Config keys that may change between a run and its resume (they do not change the result).
_RESUMABLE_CHANGES = {
    "train.strategy", "train.device", "train.threads", "train.log_every_steps",
    "train.final_eval", "train.checkpoint_every_steps", "train.keep_checkpoints",
    "train.max_steps", "train.eval_batch_size", "train.fsdp_state_dict", "data.workers",
    "data.manifest", "train.restart_on_change", "output",
}  # fmt: skip
_RESUMABLE_SECTIONS = ("tracking.", "export.", "registry.", "hub.")


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
        self.state = self._resume()
        self.trackers = start_trackers(
            self.cfg.tracking, is_main=self.d.is_main, output=self.out,
            run_name=self.cfg.tracking.run_name or self.out.name,
            resume=self.state.tracking, config=self.cfg.dump(),
        )  # fmt: skip
        ok = False
        try:
            self.state.tracking = self.trackers.ids()
            self.trackers.log_params(self.cfg.dump() | {"data_summary": self._data_summary()})
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

    def _data_summary(self) -> dict[str, Any]:
        return {"classes": len(self.manifest.classes), **self.manifest.counts(),
                "train_fingerprint": self.manifest.fingerprint("train")}  # fmt: skip

    def _resume(self) -> TrainState:
        latest = self.ckpt.latest()
        if latest is None:
            return TrainState()
        changed = self._changes(self.ckpt.trainer(latest))
        if changed and not self.t.restart_on_change:
            raise TrainingError(
                f"{self.out} holds checkpoints of a run with another config "
                f"({', '.join(changed[:4])} changed); pass a new --output, delete "
                f"{self.out / 'checkpoints'}, or set train.restart_on_change=true"
            )
        if changed:
            self.d.barrier()
            if self.d.is_main:
                shutil.rmtree(self.out / "checkpoints")
            self.d.barrier()
            progress.say(f"config changed ({', '.join(changed[:4])}): starting over",
                         enabled=self.show)  # fmt: skip
            return TrainState()
        trainer, state = self.ckpt.load(latest, self.model, self.optimizer)
        self.scheduler.load_state_dict(trainer["scheduler"])
        if trainer.get("scaler"):
            self.scaler.load_state_dict(trainer["scaler"])
        state.resumed_at.append(state.global_step)
        progress.say(
            f"[cyan]resumed[/] from {latest} (epoch {state.epoch + 1}, step {state.global_step} "
            f"of {self.total_steps})", enabled=self.show,
        )  # fmt: skip
        return state

    def _changes(self, trainer: dict[str, Any]) -> list[str]:
        """What differs between the checkpoint's run and this one (keys that matter)."""
        before = _flat(trainer.get("config", {}))
        now = _flat(self.cfg.dump())
        changed = sorted(k for k in before.keys() | now.keys()
                         if before.get(k) != now.get(k) and not _may_change(k))  # fmt: skip
        if trainer.get("train_fingerprint") != self.manifest.fingerprint("train"):
            changed.insert(0, "the train split")
        return changed

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
            record |= {"val_loss": _cross_entropy(logits, labels), "val_accuracy": m["accuracy"],
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
            final = self._wise(final, self.t.wise_alpha)
        model_dir = self.out / "model"
        from training.model import save_trained

        meta = self._meta(best is not None)
        with progress.step(f"save the trained model -> {model_dir}", enabled=self.show):
            save_trained(model_dir, clip, final.head(self.manifest.classes, version=1), meta)
        metrics = None
        if self.t.final_eval and self.manifest.items("test"):
            metrics = self._final_eval(final)
        bundle = None
        if self.cfg.export.after_train:
            from training.export import export_trained

            bundle = export_trained(model_dir, self.out / "bundle", self.cfg.export,
                                    metrics=metrics and self._manifest_metrics(metrics),
                                    show=self.show).path  # fmt: skip
            self.trackers.log_artifacts(bundle, "bundle")
            progress.say(f"[green]bundle written to {bundle}[/]", enabled=self.show)
        return FitResult(state=s, model_dir=model_dir, metrics=metrics, bundle=bundle)

    def _wise(self, final: ClipClassifier, alpha: float) -> ClipClassifier:
        from harclip.clip.load import load_clip
        from training.wise import interpolate

        zero_shot = classifier(load_clip(self.base), self.head0).state_dict()
        final.load_state_dict(interpolate(zero_shot, final.state_dict(), alpha))
        progress.say(f"WiSE-FT: alpha {alpha} (fine-tuned) + {1 - alpha:g} (zero-shot)",
                     enabled=self.show)  # fmt: skip
        return final

    def _meta(self, restored_best: bool) -> dict[str, Any]:
        s = self.state
        scratch = self.cfg.model.scratch
        return {
            "base_model": self.cfg.model.name if scratch is None else
            f"scratch:{scratch.vision_width}w{scratch.vision_layers}L-p{scratch.patch_size}"
            f"@{scratch.vision_image_size}px",
            "mode": self.t.mode, "strategy": self.d.strategy, "world": self.d.world,
            "epochs_run": s.epoch, "steps": s.global_step, "stopped_early": s.stopped_early,
            "restored_best": restored_best, "best_val_accuracy": s.best,
            "wise_alpha": self.t.wise_alpha, "resumed_at": s.resumed_at,
            "data": {"source": self.manifest.source, **self._data_summary()},
            "history": s.history, "config": self.cfg.dump(),
        }  # fmt: skip

    def _final_eval(self, final: ClipClassifier) -> dict[str, Any]:
        from training.report import write_report

        single = Dist("single", 1, 0, 0, self.d.device)
        files = self.manifest.paths("test")
        with progress.bar("evaluate test", len(files), enabled=self.show) as advance:
            logits = predict_model(final.to(self.d.device), files, image_size=self.image_size,
                                   batch=self.t.eval_batch_size, d=single, amp=self.amp,
                                   progress=advance)  # fmt: skip
        preds = predictions_from_logits(logits, self.manifest, "test")
        out = self.out / "eval"
        about = {"model": str(self.out / "model"), "split": "test",
                 "split_fingerprint": self.manifest.fingerprint("test")}  # fmt: skip
        metrics = write_report(out, preds, title="Evaluation on the test split", about=about)
        self.trackers.log_summary({f"test/{k}": v for k, v in _headline(metrics).items()})
        self.trackers.log_images(sorted(out.glob("*.png")), self.state.global_step)
        self.trackers.log_artifacts(out, "eval")
        progress.say(
            f"test: accuracy {metrics['accuracy']:.2%}, macro-F1 {metrics['macro_f1']:.4f}, "
            f"top-5 {metrics['top5_accuracy']:.2%} on {metrics['n']} images -> {out}",
            enabled=self.show,
        )  # fmt: skip
        return metrics

    def _manifest_metrics(self, metrics: dict[str, Any]) -> dict[str, Any]:
        return {"split": "test", "split_fingerprint": self.manifest.fingerprint("test"),
                **_headline(metrics)}  # fmt: skip


def amp_dtype(amp: str, device: torch.device, strategy: str) -> torch.dtype | None:
    """The autocast dtype for `train.amp` on `device` (None: fp32)."""
    if amp == "off":
        return None
    cuda = device.type == "cuda"
    if amp == "auto":
        if not cuda:
            return None
        if torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return None if strategy == "fsdp" else torch.float16
    if amp == "fp16":
        if not cuda:
            raise ConfigError(
                "invalid config value train.amp: fp16 needs a CUDA device (use bf16 or off)"
            )
        if strategy == "fsdp":
            raise ConfigError("invalid config value train.amp: fsdp here supports bf16 or off")
        return torch.float16
    return torch.bfloat16


def _may_change(key: str) -> bool:
    return key in _RESUMABLE_CHANGES or key.startswith(_RESUMABLE_SECTIONS)


def _headline(metrics: dict[str, Any]) -> dict[str, float]:
    from training.report import headline

    return headline(metrics)


def _flat(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in tree.items():
        if isinstance(v, dict):
            out |= _flat(v, f"{prefix}{k}.")
        else:
            out[f"{prefix}{k}"] = v
    return out


def _full(t: torch.Tensor) -> torch.Tensor:
    """A DTensor (FSDP's grad norm) as a plain tensor."""
    full = getattr(t, "full_tensor", None)
    return full() if callable(full) else t


def _cross_entropy(logits: np.ndarray, labels: np.ndarray) -> float:
    z = logits.astype(np.float64)
    z = z - z.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return float(-logp[np.arange(len(labels)), labels].mean())


def _epoch_line(r: dict[str, Any], epochs: int) -> str:
    line = (f"epoch {r['epoch']}/{epochs}: train loss {r['train_loss']:.4f} "
            f"acc {r['train_accuracy']:.2%}")  # fmt: skip
    if "val_accuracy" in r:
        line += f" | val loss {r['val_loss']:.4f} acc {r['val_accuracy']:.2%}"
    return line + f" | {r['images_per_s']:.0f} img/s, {r['seconds']:.1f} s"
