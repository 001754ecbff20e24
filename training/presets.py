"""Named starting points for `--preset`; a config file and command-line overrides go on top.

- `cpu-small`: a small CLIP trained from scratch on a few hundred photos in minutes on 2 CPU
  cores (docs/training.md has the measured accuracy and why it is shaped so).
- `vit-b-32`: full fine-tuning of openai/clip-vit-base-patch32 on a GPU (the recipe of the
  WiSE-FT / FLYP papers, scaled to the HAR training set).
- `linear-probe`: the same model frozen, only the text-initialised head trained.
"""

from __future__ import annotations

from typing import Any

from harclip.errors import ConfigError

_PRESETS: dict[str, dict[str, Any]] = {
    "cpu-small": {
        "model": {
            "scratch": {
                "vision_image_size": 56,
                "patch_size": 8,
                "vision_width": 128,
                "vision_layers": 4,
                "vision_heads": 4,
                "text_width": 64,
                "text_layers": 2,
                "text_heads": 2,
                "embed_dim": 128,
            }
        },
        "data": {"val_fraction": 0.0, "test_fraction": 0.2, "workers": 1},
        "augment": {"scale": [0.35, 1.0], "brightness": 0.4, "contrast": 0.4, "saturation": 0.4},
        "train": {
            "mode": "full",
            "epochs": 60,
            "batch_size": 64,
            "lr": 2e-3,
            "head_lr": 2e-3,
            "llrd": 1.0,
            "weight_decay": 0.05,
            "warmup_fraction": 0.05,
            "label_smoothing": 0.1,
            "grad_clip": 1.0,
            "early_stopping_patience": None,
            "log_every_steps": 25,
        },
        "export": {"name": "clip-har-cpu-small", "formats": ["onnx", "int8", "torchscript"]},
    },
    "vit-b-32": {
        "model": {"name": "openai/clip-vit-base-patch32"},
        "data": {"source": "hf:Bingsu/Human_Action_Recognition", "workers": 8},
        "train": {
            "mode": "full",
            "epochs": 10,
            "batch_size": 256,
            "lr": 1e-5,
            "head_lr": 1e-3,
            "llrd": 0.75,
            "weight_decay": 0.1,
            "warmup_fraction": 0.05,
            "amp": "auto",
            "early_stopping_patience": 3,
            "wise_alpha": 0.5,
        },
    },
    "linear-probe": {
        "model": {"name": "openai/clip-vit-base-patch32"},
        "train": {"mode": "linear-probe", "epochs": 20, "lr": 1e-3, "weight_decay": 0.0},
    },
}

PRESETS: tuple[str, ...] = tuple(_PRESETS)


def preset_values(name: str) -> dict[str, Any]:
    """The config tree of preset `name` (a fresh copy); `ConfigError` for an unknown name."""
    import copy

    if name not in _PRESETS:
        raise ConfigError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return copy.deepcopy(_PRESETS[name])
