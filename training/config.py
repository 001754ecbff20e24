"""The training configuration: one frozen, validated tree built once per command from defaults,
a preset, a YAML file (`--config`, e.g. the DVC `params.yaml`) and command-line overrides, in
that order. A bad value fails at once with one line naming its key.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from harclip import yamlsafe
from harclip.errors import ConfigError

Strategy = Literal["single", "ddp", "fsdp"]
Mode = Literal["linear-probe", "full"]
SplitName = Literal["train", "val", "test"]
DEFAULT_MODEL = "openai/clip-vit-base-patch32"
DEFAULT_DATASET = "hf:Bingsu/Human_Action_Recognition"


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class DataConfig(_Section):
    source: str | None = Field(
        None, description="image folder (one folder per class), CSV of file,label, or hf:ID"
    )
    manifest: Path | None = Field(None, description="a split.json written by `prepare`")
    classes: tuple[str, ...] | None = Field(
        None, description="use only these classes; each must have its folder"
    )
    hf_split: str = "train"
    hf_revision: str | None = Field(
        None, description="the hub dataset's commit sha (or tag) to load; pin it in configs"
    )
    hf_image_column: str = "image"
    hf_label_column: str = "labels"
    val_fraction: float = Field(0.15, ge=0.0, lt=1.0)
    test_fraction: float = Field(0.15, ge=0.0, lt=1.0)
    seed: int = 0
    max_per_class: int | None = Field(None, ge=1, description="cap per class (quick runs)")
    workers: int = Field(2, ge=0, description="DataLoader worker processes")

    @model_validator(mode="after")
    def _check_fractions(self) -> DataConfig:
        if self.val_fraction + self.test_fraction >= 1.0:
            raise ValueError("val_fraction + test_fraction must be below 1")
        return self


class ScratchArch(_Section):
    """A small CLIP trained from scratch: the vision tower sees `vision_image_size` pixels,
    area-downscaled inside the graph from the bundle's 224×224 input."""

    vision_image_size: int = Field(56, ge=8)
    patch_size: int = Field(8, ge=1)
    vision_width: int = Field(128, ge=8)
    vision_layers: int = Field(4, ge=1)
    vision_heads: int = Field(4, ge=1)
    text_width: int = Field(64, ge=8)
    text_layers: int = Field(2, ge=1)
    text_heads: int = Field(2, ge=1)
    embed_dim: int = Field(128, ge=2)
    image_size: int = Field(224, ge=8, description="bundle input, pixels")

    @model_validator(mode="after")
    def _check_shapes(self) -> ScratchArch:
        if self.image_size % self.vision_image_size:
            raise ValueError("image_size must be a whole multiple of vision_image_size")
        if self.vision_image_size % self.patch_size:
            raise ValueError("vision_image_size must be a whole multiple of patch_size")
        if self.vision_width % self.vision_heads or self.text_width % self.text_heads:
            raise ValueError("widths must be divisible by their head counts")
        return self


class ModelConfig(_Section):
    name: str = Field(DEFAULT_MODEL, description="hub id or local CLIP folder")
    scratch: ScratchArch | None = Field(None, description="train a small CLIP from scratch")


class AugmentConfig(_Section):
    enabled: bool = True
    scale: tuple[float, float] = (0.5, 1.0)  # random resized crop: fraction of the image area
    ratio: tuple[float, float] = (0.75, 1.3333)  # and aspect ratio range
    flip: bool = True
    brightness: float = Field(0.3, ge=0.0, le=1.0)
    contrast: float = Field(0.3, ge=0.0, le=1.0)
    saturation: float = Field(0.3, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _check_ranges(self) -> AugmentConfig:
        lo, hi = self.scale
        if not 0.0 < lo <= hi <= 1.0:
            raise ValueError("scale must be (low, high) with 0 < low <= high <= 1")
        if not 0.0 < self.ratio[0] <= self.ratio[1]:
            raise ValueError("ratio must be (low, high) with 0 < low <= high")
        return self


class TrainConfig(_Section):
    mode: Mode = "full"
    strategy: Strategy = "single"
    epochs: int = Field(10, ge=1)
    max_steps: int | None = Field(None, ge=1, description="stop after this many steps")
    batch_size: int = Field(64, ge=1, description="global images per optimizer step")
    grad_accum: int = Field(1, ge=1, description="micro-batches per optimizer step and rank")
    eval_batch_size: int = Field(64, ge=1)
    lr: float = Field(1e-5, gt=0.0, description="peak learning rate of the top vision layer")
    head_lr: float | None = Field(None, gt=0.0, description="default: 10 × lr")
    llrd: float = Field(0.75, gt=0.0, le=1.0, description="layer-wise lr decay (1: off)")
    weight_decay: float = Field(0.1, ge=0.0)
    warmup_fraction: float = Field(0.1, ge=0.0, lt=1.0)
    min_lr_ratio: float = Field(0.0, ge=0.0, le=1.0)
    grad_clip: float | None = Field(1.0, gt=0.0)
    label_smoothing: float = Field(0.0, ge=0.0, lt=1.0)
    amp: Literal["auto", "off", "bf16", "fp16"] = "auto"
    early_stopping_patience: int | None = Field(3, ge=1, description="epochs without progress")
    wise_alpha: float | None = Field(
        None, ge=0.0, le=1.0, description="WiSE-FT: alpha·fine-tuned + (1-alpha)·zero-shot"
    )
    seed: int = 0
    checkpoint_every_steps: int | None = Field(None, ge=1, description="also at each epoch end")
    keep_checkpoints: int = Field(2, ge=1)
    fsdp_state_dict: Literal["full", "sharded"] = "full"
    device: str = Field("auto", description="auto | cpu | cuda | cuda:N")
    threads: int = Field(0, ge=0, description="torch intra-op threads per process; 0: default")
    log_every_steps: int = Field(10, ge=1)
    restart_on_change: bool = Field(
        False, description="checkpoints of another config are deleted, not refused (DVC)"
    )
    final_eval: bool = Field(True, description="evaluate on the test split and write a report")


class TrackingConfig(_Section):
    mlflow: bool = False
    mlflow_uri: str | None = Field(None, description="default: sqlite:///mlruns/mlflow.db")
    experiment: str = "harclip"
    run_name: str | None = None
    wandb: bool = False
    wandb_project: str = "harclip"
    wandb_mode: Literal["offline", "online"] = "offline"


class ExportConfig(_Section):
    after_train: bool = Field(True, description="finetune writes OUTPUT/bundle at the end")
    formats: tuple[Literal["onnx", "int8", "torchscript", "torch", "tensorrt"], ...] = (
        "onnx",
        "int8",
        "torchscript",
    )
    name: str = "clip-har-finetuned"
    version: str = "1"


class RegistryConfig(_Section):
    model_name: str = "harclip-har"
    metric: Literal["accuracy", "macro_f1", "top5_accuracy"] = "accuracy"


class HubConfig(_Section):
    repo_id: str | None = None
    private: bool = False
    endpoint: str | None = Field(None, description="default: huggingface_hub's (HF_ENDPOINT)")
    timeout_s: float = Field(5.0, gt=0.0)


class Config(_Section):
    output: Path = Path("runs/latest")
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    augment: AugmentConfig = AugmentConfig()
    train: TrainConfig = TrainConfig()
    tracking: TrackingConfig = TrackingConfig()
    export: ExportConfig = ExportConfig()
    registry: RegistryConfig = RegistryConfig()
    hub: HubConfig = HubConfig()

    def dump(self) -> dict[str, Any]:
        """The whole tree as plain YAML-able values."""
        return self.model_dump(mode="json")


def load_config(
    file: Path | None = None,
    *,
    preset: str | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Config:
    """Defaults < preset < YAML `file` < `overrides` ({"train.lr": 3e-4, ...}); `ConfigError`
    naming the first bad key and why."""
    from training.presets import preset_values

    tree: dict[str, Any] = {}
    if preset is not None:
        _merge(tree, preset_values(preset))
    if file is not None:
        _merge(tree, _read_yaml(file))
    for key, value in (overrides or {}).items():
        _merge(tree, _nest(key, value))
    try:
        return Config.model_validate(tree)
    except ValidationError as e:
        raise ConfigError(_first_error(e)) from None


def parse_override(text: str) -> tuple[str, Any]:
    """`key.path=value` (the value read as YAML: 3e-4, true, [a, b]) -> (key, value)."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set expects key.path=value, got {text!r}")
    try:
        value = yamlsafe.load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    if isinstance(value, str):  # YAML 1.1 reads 3e-4 as a string
        with contextlib.suppress(ValueError):
            value = float(value)
    return key.strip(), value


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        doc = yamlsafe.load(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ConfigError(f"cannot read config {path}: {e.strerror}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"config {path} is not valid YAML: {_one_line(str(e))}") from None
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise ConfigError(f"config {path} must be a YAML mapping of sections (data:, train:, ...)")
    return doc


def _nest(key: str, value: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    node = out
    parts = key.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value
    return out


def _merge(into: dict[str, Any], new: Mapping[str, Any]) -> None:
    for k, v in new.items():
        if isinstance(v, Mapping) and isinstance(into.get(k), dict):
            _merge(into[k], v)
        else:
            into[k] = dict(v) if isinstance(v, Mapping) else v


def _first_error(e: ValidationError) -> str:
    err = e.errors()[0]
    key = ".".join(str(x) for x in err["loc"]) or "config"
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        return f"invalid config: unknown key {key!r}"
    given = err.get("input")
    shown = "" if isinstance(given, dict) else f" (got {given!r})"
    more = len(e.errors()) - 1
    tail = f"; and {more} more" if more else ""
    return f"invalid config value {key}: {msg}{shown}{tail}"


def _one_line(text: str) -> str:
    return " ".join(text.split())
