"""WiSE-FT weight interpolation."""

from __future__ import annotations

import pytest
import torch

from training.model.wise import interpolate


def test_interpolates_float_tensors_and_keeps_counters() -> None:
    zs = {"w": torch.zeros(3), "b": torch.tensor([2.0]), "n": torch.tensor(1)}
    ft = {"w": torch.ones(3), "b": torch.tensor([4.0]), "n": torch.tensor(7)}
    out = interpolate(zs, ft, 0.25)
    assert torch.allclose(out["w"], torch.full((3,), 0.25))
    assert torch.allclose(out["b"], torch.tensor([2.5]))
    assert int(out["n"]) == 7
    assert torch.equal(interpolate(zs, ft, 1.0)["w"], ft["w"])
    assert torch.equal(interpolate(zs, ft, 0.0)["w"], zs["w"])


def test_refuses_mismatched_state_dicts() -> None:
    with pytest.raises(ValueError, match="keys"):
        interpolate({"a": torch.zeros(1)}, {"b": torch.zeros(1)}, 0.5)
    with pytest.raises(ValueError, match="shapes"):
        interpolate({"a": torch.zeros(1)}, {"a": torch.zeros(2)}, 0.5)
    with pytest.raises(ValueError, match="alpha"):
        interpolate({"a": torch.zeros(1)}, {"a": torch.zeros(1)}, 1.5)
