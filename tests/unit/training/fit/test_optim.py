"""The warm-up + cosine schedule and the layer-wise learning-rate decay groups."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from torch import nn

from training.fit.optim import (
    clean_name,
    group_specs,
    layer_of,
    lr_factor,
    make_optimizer,
    make_scheduler,
)


def test_warmup_then_cosine_to_the_floor() -> None:
    total, warmup = 100, 10
    f = [lr_factor(s, total, warmup, min_ratio=0.1) for s in range(total + 1)]
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0)  # (step + 1) / warmup
    assert all(a <= b for a, b in itertools.pairwise(f[:10]))  # rising
    assert all(a >= b for a, b in itertools.pairwise(f[9:]))  # then falling
    assert f[55] == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert f[100] == pytest.approx(0.1)
    assert lr_factor(500, total, warmup, 0.1) == pytest.approx(0.1)  # stays at the floor


def test_no_warmup_starts_at_the_peak() -> None:
    assert lr_factor(0, 10, 0) == pytest.approx(1.0)


def test_scheduler_scales_every_group() -> None:
    p1, p2 = nn.Parameter(torch.zeros(2)), nn.Parameter(torch.zeros(2))
    opt = torch.optim.SGD([{"params": [p1], "lr": 1.0}, {"params": [p2], "lr": 0.1}])
    sched = make_scheduler(opt, total=10, warmup=2, min_ratio=0.0)
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.5, 0.05])
    opt.step()
    sched.step()
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([1.0, 0.1])


class _Tower(nn.Module):
    """The parameter names of `ClipClassifier` around a 3-block vision tower."""

    def __init__(self) -> None:
        super().__init__()
        vision = nn.Module()
        vision.embeddings = nn.Module()
        vision.embeddings.class_embedding = nn.Parameter(torch.zeros(4))
        vision.embeddings.patch_embedding = nn.Conv2d(3, 4, 2)
        vision.embeddings.position_embedding = nn.Embedding(5, 4)
        vision.pre_layrnorm = nn.LayerNorm(4)
        vision.encoder = nn.Module()
        vision.encoder.layers = nn.ModuleList(nn.Linear(4, 4) for _ in range(3))
        vision.post_layernorm = nn.LayerNorm(4)
        self.encoder = nn.Module()
        self.encoder.vision = vision
        self.encoder.projection = nn.Linear(4, 4, bias=False)
        self.weight = nn.Parameter(torch.zeros(4, 2))
        self.bias = nn.Parameter(torch.zeros(2))


def test_layers_of_parameters() -> None:
    assert layer_of("encoder.vision.embeddings.patch_embedding.weight", 3) == 0
    assert layer_of("encoder.vision.pre_layrnorm.weight", 3) == 0
    assert layer_of("encoder.vision.encoder.layers.0.weight", 3) == 1
    assert layer_of("encoder.vision.encoder.layers.2.bias", 3) == 3
    assert layer_of("encoder.vision.post_layernorm.weight", 3) == 4
    assert layer_of("encoder.projection.weight", 3) == 4
    assert layer_of("weight", 3) is None and layer_of("bias", 3) is None
    assert clean_name("module.encoder.vision.encoder.layers.0.weight") == (
        "encoder.vision.encoder.layers.0.weight"
    )


def test_llrd_groups_decay_downwards_and_spare_norms_and_biases() -> None:
    model = _Tower()
    specs = group_specs(model.named_parameters(), 3, lr=1.0, head_lr=10.0, llrd=0.5,
                        weight_decay=0.1)  # fmt: skip
    by_name = {s.name: s for s in specs}
    assert by_name["layer4"].lr == pytest.approx(1.0)  # projection: the top
    assert by_name["layer3"].lr == pytest.approx(0.5)
    assert by_name["layer1"].lr == pytest.approx(0.125)
    assert by_name["layer0"].lr == pytest.approx(0.0625)  # embeddings: the bottom
    assert by_name["head"].lr == 10.0 and by_name["head"].params == ["weight"]
    assert by_name["head/no-decay"].params == ["bias"]
    no_decay = by_name["layer0/no-decay"].params
    assert "encoder.vision.embeddings.class_embedding" in no_decay
    assert "encoder.vision.embeddings.position_embedding.weight" in no_decay
    assert "encoder.vision.pre_layrnorm.weight" in no_decay
    assert by_name["layer0"].params == ["encoder.vision.embeddings.patch_embedding.weight"]
    assert all(s.weight_decay == (0.0 if s.name.endswith("no-decay") else 0.1) for s in specs)
    names = [n for s in specs for n in s.params]
    assert sorted(names) == sorted(n for n, _ in model.named_parameters())  # each exactly once


def test_frozen_tower_leaves_only_the_head() -> None:
    model = _Tower()
    model.encoder.requires_grad_(False)
    opt = make_optimizer(model, 3, lr=1.0, head_lr=1e-3, llrd=0.5, weight_decay=0.0)
    assert [g["name"] for g in opt.param_groups] == ["head", "head/no-decay"]
    assert all(g["lr"] == 1e-3 for g in opt.param_groups)
