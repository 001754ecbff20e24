"""Resumable checkpoints: `OUTPUT/checkpoints/step-NNNNNNN/`, the newest complete one wins.

Model and optimizer state go through `torch.distributed.checkpoint.state_dict`, keyed by
parameter name, so a full checkpoint (`state.pt`, written by rank 0) can be resumed by any
strategy; FSDP can instead write a sharded one (`dcp/`, every rank its shard). `trainer.pt`
holds the schedule, loss scaler, loop position, early-stopping state and the tracking run ids;
`COMPLETE` is written last, so a run killed while saving resumes from the previous checkpoint.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)

from training.fit.distributed import Dist

_COMPLETE = "COMPLETE"


@dataclass
class TrainState:
    """Where the loop is and what it has seen; saved with every checkpoint."""

    epoch: int = 0  # the epoch in progress
    step_in_epoch: int = 0  # the next global batch of that epoch
    global_step: int = 0  # optimizer steps done
    best: float | None = None  # best validation accuracy so far
    best_step: int | None = None
    bad_epochs: int = 0  # epochs since the best
    history: list[dict[str, Any]] = field(default_factory=list)  # one record per epoch
    tracking: dict[str, str] = field(default_factory=dict)  # mlflow_run_id, wandb_run_id
    resumed_at: list[int] = field(default_factory=list)  # global steps this run resumed from
    stopped_early: bool = False


class Checkpointer:
    def __init__(self, folder: Path, d: Dist, *, sharded: bool, keep: int) -> None:
        self.folder, self.d, self.sharded, self.keep = folder, d, sharded, keep

    def latest(self) -> Path | None:
        """The newest complete checkpoint folder, if any."""
        if not self.folder.is_dir():
            return None
        done = sorted(p for p in self.folder.glob("step-*") if (p / _COMPLETE).is_file())
        return done[-1] if done else None

    def save(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        trainer: dict[str, Any],
        state: TrainState,
    ) -> Path:
        """Write a checkpoint at `state.global_step` (every rank calls this)."""
        path = self.folder / f"step-{state.global_step:07d}"
        if self.d.is_main:
            shutil.rmtree(path, ignore_errors=True)
            path.mkdir(parents=True)
        self.d.barrier()
        if self.sharded:
            from torch.distributed.checkpoint.state_dict_saver import save as dcp_save

            dcp_save(_sharded_state(model, optimizer), checkpoint_id=str(path / "dcp"))
        else:
            full = _full_state(model, optimizer, self.d)
            if self.d.is_main:
                _atomic_save(full, path / "state.pt")
        if self.d.is_main:
            _atomic_save(trainer | {"state": asdict(state)}, path / "trainer.pt")
            (path / _COMPLETE).write_text(f"{state.global_step}\n")
            self._prune(path)
        self.d.barrier()
        return path

    def trainer(self, path: Path) -> dict[str, Any]:
        """The small part of checkpoint `path`: schedule, config, loop state."""
        doc: dict[str, Any] = torch.load(
            path / "trainer.pt", map_location="cpu", weights_only=False
        )
        return doc

    def load(
        self, path: Path, model: nn.Module, optimizer: torch.optim.Optimizer
    ) -> tuple[dict[str, Any], TrainState]:
        """Restore model and optimizer from `path`; returns the trainer dict and the state."""
        if (path / "dcp").is_dir():
            from torch.distributed.checkpoint.state_dict_loader import load as dcp_load

            sd = _sharded_state(model, optimizer)
            dcp_load(sd, checkpoint_id=str(path / "dcp"))
            set_model_state_dict(model, sd["model"])
            set_optimizer_state_dict(model, optimizer, sd["optim"])
        else:
            full: dict[str, Any] = {"model": {}, "optim": {}}
            if self.d.is_main or not self.d.distributed:
                full = torch.load(path / "state.pt", map_location="cpu", weights_only=True)
            opts = StateDictOptions(full_state_dict=True, broadcast_from_rank0=self.d.distributed)
            set_model_state_dict(model, full["model"], options=opts)
            set_optimizer_state_dict(model, optimizer, full["optim"], options=opts)
        trainer = self.trainer(path)
        state = TrainState(**trainer.pop("state"))
        return trainer, state

    def save_best(self, model: nn.Module) -> None:
        """The model's full weights as `best.pt` (rank 0 writes; every rank calls this)."""
        weights = full_model_state(model, self.d)
        if self.d.is_main:
            _atomic_save(weights, self.folder / "best.pt")

    def load_best(self) -> dict[str, torch.Tensor] | None:
        f = self.folder / "best.pt"
        return torch.load(f, map_location="cpu", weights_only=True) if f.is_file() else None

    def _prune(self, newest: Path) -> None:
        steps = sorted(p for p in self.folder.glob("step-*") if p != newest)
        complete = [p for p in steps if (p / _COMPLETE).is_file()]
        for p in [p for p in steps if p not in complete] + complete[
            : max(0, len(complete) - self.keep + 1)
        ]:
            shutil.rmtree(p, ignore_errors=True)


def full_model_state(model: nn.Module, d: Dist) -> dict[str, torch.Tensor]:
    """The full (unsharded) model weights on CPU; on rank 0 only when distributed."""
    opts = StateDictOptions(full_state_dict=True, cpu_offload=d.distributed)
    sd = get_model_state_dict(model, options=opts)
    return {k: v.detach().cpu() for k, v in sd.items() if isinstance(v, torch.Tensor)}


def _full_state(model: nn.Module, optimizer: torch.optim.Optimizer, d: Dist) -> dict[str, Any]:
    opts = StateDictOptions(full_state_dict=True, cpu_offload=d.distributed)
    return {
        "model": get_model_state_dict(model, options=opts),
        "optim": get_optimizer_state_dict(model, optimizer, options=opts),
    }


def _sharded_state(model: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    return {
        "model": get_model_state_dict(model),
        "optim": get_optimizer_state_dict(model, optimizer),
    }


def _atomic_save(obj: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)
