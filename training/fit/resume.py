"""Resuming a run from its newest checkpoint: only when the config keys that change the result
and the train split are the same (or, with `train.restart_on_change`, starting over)."""

from __future__ import annotations

import shutil
from typing import Any

import torch
from torch import nn

from training import progress
from training.config import Config
from training.errors import TrainingError
from training.fit.checkpoint import Checkpointer, TrainState
from training.fit.distributed import Dist

# Config keys that may change between a run and its resume (they do not change the result).
_RESUMABLE_CHANGES = {
    "train.strategy", "train.device", "train.threads", "train.log_every_steps",
    "train.final_eval", "train.checkpoint_every_steps", "train.keep_checkpoints",
    "train.max_steps", "train.eval_batch_size", "train.fsdp_state_dict", "data.workers",
    "data.manifest", "train.restart_on_change", "output",
}  # fmt: skip
_RESUMABLE_SECTIONS = ("tracking.", "export.", "registry.", "hub.")


def resume(
    ckpt: Checkpointer,
    cfg: Config,
    d: Dist,
    *,
    train_fingerprint: str,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LambdaLR,
    scaler: torch.amp.GradScaler,
    total_steps: int,
    show: bool,
) -> TrainState:
    """The state to train from: restored from `ckpt`'s newest checkpoint into `model`,
    `optimizer`, `scheduler` and `scaler`, or a fresh one (every rank calls this)."""
    latest = ckpt.latest()
    if latest is None:
        return TrainState()
    changed = config_changes(ckpt.trainer(latest), cfg, train_fingerprint)
    out = cfg.output
    if changed and not cfg.train.restart_on_change:
        raise TrainingError(
            f"{out} holds checkpoints of a run with another config "
            f"({', '.join(changed[:4])} changed); pass a new --output, delete "
            f"{out / 'checkpoints'}, or set train.restart_on_change=true"
        )
    if changed:
        d.barrier()
        if d.is_main:
            shutil.rmtree(out / "checkpoints")
        d.barrier()
        progress.say(f"config changed ({', '.join(changed[:4])}): starting over",
                     enabled=show)  # fmt: skip
        return TrainState()
    trainer, state = ckpt.load(latest, model, optimizer)
    scheduler.load_state_dict(trainer["scheduler"])
    if trainer.get("scaler"):
        scaler.load_state_dict(trainer["scaler"])
    state.resumed_at.append(state.global_step)
    progress.say(
        f"[cyan]resumed[/] from {latest} (epoch {state.epoch + 1}, step {state.global_step} "
        f"of {total_steps})", enabled=show,
    )  # fmt: skip
    return state


def config_changes(trainer: dict[str, Any], cfg: Config, train_fingerprint: str) -> list[str]:
    """What differs between the checkpoint's run (its `trainer` dict) and this one (keys that
    matter; "the train split" first when its fingerprint differs)."""
    before = _flat(trainer.get("config", {}))
    now = _flat(cfg.dump())
    changed = sorted(k for k in before.keys() | now.keys()
                     if before.get(k) != now.get(k) and not _may_change(k))  # fmt: skip
    if trainer.get("train_fingerprint") != train_fingerprint:
        changed.insert(0, "the train split")
    return changed


def _may_change(key: str) -> bool:
    return key in _RESUMABLE_CHANGES or key.startswith(_RESUMABLE_SECTIONS)


def _flat(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in tree.items():
        if isinstance(v, dict):
            out |= _flat(v, f"{prefix}{k}.")
        else:
            out[f"{prefix}{k}"] = v
    return out
