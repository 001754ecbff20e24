"""WiSE-FT (Wortsman et al., 2022): the weight-space ensemble `alpha · fine-tuned +
(1 - alpha) · zero-shot` of the image tower and the head (the zero-shot head being the
prompt-ensembled text head). alpha 1 is the fine-tuned model, 0 the zero-shot one; in between it
usually keeps most of the fine-tuned accuracy and more of the zero-shot robustness."""

from __future__ import annotations

from collections.abc import Mapping

import torch


def interpolate(
    zero_shot: Mapping[str, torch.Tensor], fine_tuned: Mapping[str, torch.Tensor], alpha: float
) -> dict[str, torch.Tensor]:
    """Per tensor `alpha · fine_tuned + (1 - alpha) · zero_shot`; non-float tensors (counters)
    are taken from `fine_tuned`. Both state dicts must have the same keys and shapes."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be within [0, 1], got {alpha}")
    if zero_shot.keys() != fine_tuned.keys():
        diff = sorted(set(zero_shot) ^ set(fine_tuned))
        raise ValueError(f"state dicts differ in {len(diff)} keys, e.g. {diff[0]!r}")
    out: dict[str, torch.Tensor] = {}
    for key, ft in fine_tuned.items():
        zs = zero_shot[key]
        if zs.shape != ft.shape:
            raise ValueError(f"{key}: shapes differ, {tuple(zs.shape)} vs {tuple(ft.shape)}")
        if ft.is_floating_point():
            out[key] = torch.lerp(zs.to(ft.dtype), ft, alpha)
        else:
            out[key] = ft.clone()
    return out
