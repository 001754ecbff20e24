"""AdamW with layer-wise learning-rate decay (LLRD) over the CLIP vision tower, and the warm-up +
cosine schedule.

LLRD: with L transformer blocks, the embeddings are layer 0, block i is layer i + 1, the final
norm and projection are layer L + 1; layer l trains at `lr · llrd^(L + 1 - l)`, so the lowest
layers move least. The head trains at `head_lr`. Biases, norms, the class token and the position
embeddings get no weight decay.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

_WRAPPER_PREFIXES = re.compile(
    r"(module\.|_orig_mod\.|_fsdp_wrapped_module\.|_checkpoint_wrapped_module\.)"
)
_BLOCK = re.compile(r"^encoder\.vision\.encoder\.layers\.(\d+)\.")
_HEAD = ("weight", "bias")


@dataclass(frozen=True)
class GroupSpec:
    name: str  # "head", "layer3", ...; "/no-decay" appended when weight decay is off
    lr: float
    weight_decay: float
    params: list[str]  # parameter names (wrappers' prefixes removed)


def clean_name(name: str) -> str:
    """A parameter name without DDP / FSDP / compile wrapper prefixes."""
    return _WRAPPER_PREFIXES.sub("", name)


def layer_of(name: str, num_layers: int) -> int | None:
    """The LLRD layer of a classifier parameter (0 .. num_layers + 1), None for the head."""
    if name in _HEAD:
        return None
    m = _BLOCK.match(name)
    if m:
        return int(m.group(1)) + 1
    if name.startswith(("encoder.vision.embeddings.", "encoder.vision.pre_layrnorm.")):
        return 0
    return num_layers + 1  # post_layernorm, projection


def no_decay(name: str, param: torch.Tensor) -> bool:
    return param.ndim < 2 or name.endswith(("class_embedding", "position_embedding.weight"))


def group_specs(
    named: Iterable[tuple[str, torch.Tensor]],
    num_layers: int,
    *,
    lr: float,
    head_lr: float,
    llrd: float,
    weight_decay: float,
) -> list[GroupSpec]:
    """Parameter groups (trainable parameters only), lowest layer first, head last."""
    groups: dict[tuple[int, bool], GroupSpec] = {}
    for raw, p in named:
        if not p.requires_grad:
            continue
        name = clean_name(raw)
        layer = layer_of(name, num_layers)
        key_layer = num_layers + 2 if layer is None else layer
        off = no_decay(name, p)
        key = (key_layer, off)
        if key not in groups:
            if layer is None:
                glr, gname = head_lr, "head"
            else:
                glr, gname = lr * llrd ** (num_layers + 1 - layer), f"layer{layer}"
            groups[key] = GroupSpec(
                name=gname + ("/no-decay" if off else ""),
                lr=glr,
                weight_decay=0.0 if off else weight_decay,
                params=[],
            )
        groups[key].params.append(name)
    return [groups[k] for k in sorted(groups)]


def make_optimizer(
    model: nn.Module,
    num_layers: int,
    *,
    lr: float,
    head_lr: float,
    llrd: float,
    weight_decay: float,
) -> torch.optim.AdamW:
    """AdamW over `group_specs` of `model` (build it after DDP / FSDP wrapping: FSDP replaces
    the parameters by their shards)."""
    by_name = {clean_name(n): p for n, p in model.named_parameters()}
    specs = group_specs(
        model.named_parameters(), num_layers,
        lr=lr, head_lr=head_lr, llrd=llrd, weight_decay=weight_decay,
    )  # fmt: skip
    groups: list[dict[str, Any]] = [
        {"params": [by_name[n] for n in s.params], "lr": s.lr,
         "weight_decay": s.weight_decay, "name": s.name}
        for s in specs
    ]  # fmt: skip
    if not groups:
        raise ValueError("no trainable parameters")
    return torch.optim.AdamW(groups, betas=(0.9, 0.98), eps=1e-6)


def lr_factor(step: int, total: int, warmup: int, min_ratio: float = 0.0) -> float:
    """Multiplier of each group's peak lr at optimizer step `step` (0-based): linear warm-up
    over `warmup` steps to 1, then cosine down to `min_ratio` at step `total`."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def make_scheduler(
    optimizer: torch.optim.Optimizer, total: int, warmup: int, min_ratio: float
) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, total, warmup, min_ratio)
    )
