"""One process, DDP or FSDP: process-group set-up from `torchrun`'s environment (gloo on CPU,
nccl on CUDA), the AMP dtype, model wrapping, and the few collectives the loop needs.

FSDP is FSDP2 (`fully_shard`): every CLIP encoder block is its own unit, then the root (full
shard: parameters, gradients and optimizer state are split across ranks and gathered per block
for forward and backward).
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from harclip.errors import ConfigError
from training.config import Strategy
from training.errors import TrainingError


@dataclass(frozen=True)
class Dist:
    strategy: Strategy
    world: int
    rank: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.strategy != "single"

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def mean(self, value: float) -> float:
        """The mean of `value` over the ranks."""
        if not self.distributed:
            return value
        t = torch.tensor([value], dtype=torch.float64, device=self._comm_device)
        dist.all_reduce(t)
        return float(t.item()) / self.world

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's `obj` on every rank."""
        if not self.distributed:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather_rows(self, rows: torch.Tensor, total: int) -> torch.Tensor:
        """Concatenate each rank's equally long `rows` [n, ...] in rank-interleaved order
        (row i came from rank i % world) and keep the first `total`."""
        if not self.distributed:
            return rows[:total]
        parts = [torch.empty_like(rows) for _ in range(self.world)]
        dist.all_gather(parts, rows.contiguous())
        return torch.stack(parts, dim=1).flatten(0, 1)[:total]

    @property
    def _comm_device(self) -> torch.device:
        return self.device if dist.get_backend() == "nccl" else torch.device("cpu")


def launched_by_torchrun() -> bool:
    return bool(dist.is_torchelastic_launched())


def setup(strategy: Strategy, device: str, threads: int) -> Dist:
    """Join the process group for ddp / fsdp (started by torchrun), pick the device."""
    if threads > 0:
        torch.set_num_threads(threads)
    if strategy == "single" and not launched_by_torchrun():
        return Dist("single", 1, 0, 0, device_for(device, 0))
    if not launched_by_torchrun():
        raise TrainingError(
            f"strategy {strategy} runs under torchrun: torchrun --nproc-per-node N -m training "
            "finetune ... (or pass --nproc N)"
        )
    local = dist.get_node_local_rank(fallback_rank=0)
    dev = device_for(device, local)
    if not dist.is_initialized():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        dist.init_process_group(backend, timeout=datetime.timedelta(minutes=30))
    rank, world = dist.get_rank(), dist.get_world_size()
    if strategy == "single":
        if world > 1:
            dist.destroy_process_group()
            raise TrainingError(
                f"strategy single was launched as {world} processes; use --strategy ddp or fsdp"
            )
        dist.destroy_process_group()
        return Dist("single", 1, 0, 0, dev)
    return Dist(strategy, world, rank, local, dev)


def teardown(d: Dist) -> None:
    if d.distributed and dist.is_initialized():
        dist.destroy_process_group()


def wrap(model: nn.Module, d: Dist, amp_dtype: torch.dtype | None) -> nn.Module:
    """The model as the strategy trains it (on its device)."""
    model = model.to(d.device)
    if d.strategy == "ddp":
        from torch.nn.parallel import DistributedDataParallel

        ids = [d.device.index] if d.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids)
    if d.strategy == "fsdp":
        from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

        policy = MixedPrecisionPolicy(param_dtype=amp_dtype, reduce_dtype=torch.float32)
        for block in model.encoder.vision.encoder.layers:  # type: ignore[union-attr]
            fully_shard(block, mp_policy=policy)
        fully_shard(model, mp_policy=policy)
    return model


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside a DDP wrapper (FSDP2 keeps the module itself)."""
    inner = getattr(model, "module", None)
    return inner if isinstance(inner, nn.Module) else model


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


def device_for(spec: str, local_rank: int) -> torch.device:
    if spec == "auto":
        return torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
    dev = torch.device(spec)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise TrainingError(f"train.device {spec} asked for CUDA, but torch sees no GPU here")
        if dev.index is None:
            dev = torch.device(f"cuda:{local_rank}")
    return dev
