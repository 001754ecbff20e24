"""The model being trained: the bundle's image graph (`harclip.clip.wrappers.ImageEncoder`:
uint8 pixels → L2-normalised embedding) plus the bundle's head (`logit_scale · emb @ W + b`),
so what trains is what gets exported. The head starts as the zero-shot head (prompt-ensembled
text embeddings); the text tower is not trained.

A trained model is saved as a folder: the transformers CLIP (as `init-model` writes it, so
`load_clip` and `harclip export` read it), `head.safetensors` + `labels.json`, `training.json`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import torch
from torch import nn

from harclip.clip.load import LoadedClip, load_clip
from harclip.clip.wrappers import ImageEncoder, TextEncoderModule, tokenize
from harclip.labels import prompts_for
from harclip.model.head import Head
from training.config import ModelConfig, ScratchArch

TRAINING_META = "training.json"


class ClipClassifier(nn.Module):
    """uint8 [B, S, S, 3] RGB → logits [B, C]."""

    logit_scale: torch.Tensor  # [] (already exp'd, fixed)

    def __init__(self, clip: LoadedClip, weight: np.ndarray, bias: np.ndarray, scale: float):
        super().__init__()
        self.encoder = ImageEncoder(clip.model, clip.mean, clip.std, clip.image_size)
        self.weight = nn.Parameter(torch.from_numpy(np.array(weight, dtype=np.float32)))  # [D, C]
        self.bias = nn.Parameter(torch.from_numpy(np.array(bias, dtype=np.float32)))  # [C]
        self.register_buffer("logit_scale", torch.tensor(float(scale)))

    @property
    def num_layers(self) -> int:
        return len(self.encoder.vision.encoder.layers)

    def embed(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.encoder(pixels)  # type: ignore[no-any-return]  # [B,S,S,3] -> [B, D]

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        emb = self.encoder(pixels)  # [B, S, S, 3] -> [B, D]
        logits: torch.Tensor = self.logit_scale * (emb @ self.weight) + self.bias  # [B, C]
        return logits

    def head(self, labels: Sequence[str], version: int, kind: str = "fine-tuned") -> Head:
        """The head in the bundle's format."""
        return Head(
            labels=tuple(labels),
            weight=self.weight.detach().float().cpu().numpy().copy(),
            bias=self.bias.detach().float().cpu().numpy().copy(),
            logit_scale=float(self.logit_scale),
            version=version,
            kind=kind,
            prompts={label: prompts_for(label) for label in labels},
        )


def zero_shot_head(clip: LoadedClip, classes: Sequence[str]) -> Head:
    """Per class the re-normalised mean of its prompts' text embeddings (harclip's templates);
    the same head `harclip export` builds through the ONNX text tower."""
    return text_head(clip, {c: prompts_for(c) for c in classes})


def text_head(clip: LoadedClip, label_set: Mapping[str, Sequence[str]]) -> Head:
    """A zero-shot head for {label: [prompt, ...]} with the torch text tower."""
    module = TextEncoderModule(clip.model).eval()
    cols = []
    with torch.inference_mode():
        for prompts in label_set.values():
            enc = tokenize(clip.tokenizer, list(prompts), clip.context_length)
            mean = module(enc["input_ids"], enc["attention_mask"]).mean(dim=0)  # [P, D] -> [D]
            cols.append(nn.functional.normalize(mean, dim=0))
    weight = torch.stack(cols, dim=1).numpy().astype(np.float32)  # [D, C]
    return Head(
        labels=tuple(label_set),
        weight=weight,
        bias=np.zeros(weight.shape[1], dtype=np.float32),
        logit_scale=clip.logit_scale,
        version=1,
        kind="zero-shot",
        prompts={k: list(v) for k, v in label_set.items()},
    )


def classifier(clip: LoadedClip, head: Head) -> ClipClassifier:
    return ClipClassifier(clip, head.weight, head.bias, head.logit_scale)


def base_model(cfg: ModelConfig, folder: Path, seed: int) -> str:
    """What to load as the starting point: `cfg.name`, or for `cfg.scratch` a random small CLIP
    written once to `folder` (the same files `harclip init-model` writes)."""
    if cfg.scratch is None:
        return cfg.name
    if not (folder / "config.json").is_file():
        write_scratch_model(cfg.scratch, folder, seed)
    return str(folder)


def write_scratch_model(arch: ScratchArch, folder: Path, seed: int) -> Path:
    """A random CLIP of `arch` + the locally trained tokenizer; its vision tower takes
    `arch.vision_image_size` pixels while its preprocessor (and so the bundle) takes
    `arch.image_size`: `ImageEncoder` area-downscales in between."""
    from transformers import CLIPConfig, CLIPModel
    from transformers.utils import logging as hf_logging

    from harclip.clip.init import CONTEXT_LENGTH, preprocessor_config, train_tokenizer

    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]

    tokenizer = train_tokenizer()
    text = {
        "vocab_size": len(tokenizer), "hidden_size": arch.text_width,
        "intermediate_size": 4 * arch.text_width, "num_hidden_layers": arch.text_layers,
        "num_attention_heads": arch.text_heads, "max_position_embeddings": CONTEXT_LENGTH,
        "bos_token_id": 0, "eos_token_id": 1, "pad_token_id": 1,
        "projection_dim": arch.embed_dim,
    }  # fmt: skip
    vision = {
        "hidden_size": arch.vision_width, "intermediate_size": 4 * arch.vision_width,
        "num_hidden_layers": arch.vision_layers, "num_attention_heads": arch.vision_heads,
        "image_size": arch.vision_image_size, "patch_size": arch.patch_size,
        "projection_dim": arch.embed_dim,
    }  # fmt: skip
    config = CLIPConfig(text_config=text, vision_config=vision, projection_dim=arch.embed_dim)
    torch.manual_seed(seed)
    model: Any = CLIPModel(config)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    pre = orjson.dumps(preprocessor_config(arch.image_size), option=orjson.OPT_INDENT_2)
    (folder / "preprocessor_config.json").write_bytes(pre)
    return folder


def save_trained(folder: Path, clip: LoadedClip, head: Head, meta: Mapping[str, Any]) -> None:
    """The CLIP (its vision tower now trained), the head and `training.json` into `folder`."""
    from harclip.clip.export import save_hf

    save_hf(clip, folder)
    head.save(folder / "head.safetensors", folder / "labels.json")
    (folder / TRAINING_META).write_bytes(
        orjson.dumps(dict(meta), option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY)
    )


def load_trained(folder: Path) -> tuple[LoadedClip, Head, dict[str, Any]]:
    """A folder written by `save_trained`: the CLIP, its trained head, and its metadata."""
    from training.errors import TrainingError

    head_file, labels_file = folder / "head.safetensors", folder / "labels.json"
    if not head_file.is_file():
        raise TrainingError(
            f"{folder} is not a trained model (no head.safetensors); pass the `model` folder "
            "that `finetune` writes in its output"
        )
    clip = load_clip(folder)
    head = Head.load(head_file, labels_file)
    meta_file = folder / TRAINING_META
    meta = orjson.loads(meta_file.read_bytes()) if meta_file.is_file() else {}
    return clip, head, meta
