"""`init-model`: a randomly initialised CLIP + a locally trained tokenizer, saved in the hub's
folder format, so tests, benchmarks and the offline demo take the code path real weights take."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import orjson

from harclip.clip.corpus import corpus
from harclip.errors import ModelError

# written by `init_model` beside the weights: loaders (and so `harclip export`'s manifest) know
# the weights are random
RANDOM_MARKER = "harclip-random-weights.json"

Arch = Literal["tiny", "vit-b-32"]
ARCHS: tuple[Arch, ...] = ("tiny", "vit-b-32")

BOS, EOS = "<|startoftext|>", "<|endoftext|>"
OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)
CONTEXT_LENGTH = 77
IMAGE_SIZE = 224
# CLIP's pre-tokenizer split: specials, English contractions, letter runs, single digits, symbols.
_SPLIT = (
    r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d"""
    r"""|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""
)


@dataclass(frozen=True)
class _Shape:
    text_width: int
    text_layers: int
    text_heads: int
    vision_width: int
    vision_layers: int
    vision_heads: int
    embed_dim: int
    vocab_size: int  # >= the trained tokenizer's vocabulary; ViT-B/32 keeps the real 49408 rows


_SHAPES: dict[str, _Shape] = {
    "tiny": _Shape(32, 2, 2, 64, 2, 2, 32, 0),
    "vit-b-32": _Shape(512, 12, 8, 768, 12, 12, 512, 49408),
}


def train_tokenizer(vocab_size: int = 1000) -> Any:
    """A byte-level BPE (CLIP style: lower-case, `</w>` word ends) trained on the built-in corpus,
    wrapped as a transformers `CLIPTokenizerFast`; ids 0, 1 are <|startoftext|>, <|endoftext|>."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import CLIPTokenizerFast  # type: ignore[attr-defined]

    tok = Tokenizer(models.BPE(unk_token=None, end_of_word_suffix="</w>"))
    tok.normalizer = normalizers.Sequence([normalizers.NFC(), normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(_SPLIT), behavior="removed", invert=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[BOS, EOS],
        end_of_word_suffix="</w>",
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus(), trainer)
    return CLIPTokenizerFast(
        tokenizer_object=tok,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=EOS,
        unk_token=EOS,
        model_max_length=CONTEXT_LENGTH,
    )


def clip_config(arch: Arch, vocab_size: int, embed_dim: int | None = None) -> Any:
    """The transformers `CLIPConfig` of `arch` (embedding size `embed_dim` if given); eos/pad ids
    match `train_tokenizer` so the text tower pools at the first <|endoftext|>."""
    from dataclasses import replace

    from transformers import CLIPConfig

    if arch not in _SHAPES:
        raise ModelError(f"unknown architecture {arch!r}; choose one of {', '.join(ARCHS)}")
    if embed_dim is not None and embed_dim < 1:
        raise ModelError(f"embed_dim must be >= 1, got {embed_dim}")
    s = _SHAPES[arch] if embed_dim is None else replace(_SHAPES[arch], embed_dim=embed_dim)
    text = {
        "vocab_size": max(vocab_size, s.vocab_size),
        "hidden_size": s.text_width,
        "intermediate_size": 4 * s.text_width,
        "num_hidden_layers": s.text_layers,
        "num_attention_heads": s.text_heads,
        "max_position_embeddings": CONTEXT_LENGTH,
        "bos_token_id": 0,
        "eos_token_id": 1,
        "pad_token_id": 1,
        "projection_dim": s.embed_dim,
    }
    vision = {
        "hidden_size": s.vision_width,
        "intermediate_size": 4 * s.vision_width,
        "num_hidden_layers": s.vision_layers,
        "num_attention_heads": s.vision_heads,
        "image_size": IMAGE_SIZE,
        "patch_size": 32,
        "projection_dim": s.embed_dim,
    }
    return CLIPConfig(text_config=text, vision_config=vision, projection_dim=s.embed_dim)


def preprocessor_config(image_size: int = IMAGE_SIZE) -> dict[str, Any]:
    """`preprocessor_config.json` as openai/clip-vit-base-patch32 has it (CLIPImageProcessor)."""
    return {
        "image_processor_type": "CLIPImageProcessor",
        "do_resize": True,
        "size": {"shortest_edge": image_size},
        "resample": 3,  # bicubic
        "do_center_crop": True,
        "crop_size": {"height": image_size, "width": image_size},
        "do_rescale": True,
        "rescale_factor": 1 / 255,
        "do_normalize": True,
        "image_mean": list(OPENAI_MEAN),
        "image_std": list(OPENAI_STD),
        "do_convert_rgb": True,
    }


def init_model(
    outdir: Path, arch: Arch = "tiny", *, seed: int = 0, embed_dim: int | None = None
) -> Path:
    """Write a random CLIP of `arch` to `outdir` (config, weights, tokenizer, preprocessor
    config), loadable with `load_clip(outdir)` and `CLIPModel.from_pretrained`; `embed_dim`
    overrides the architecture's embedding size. Returns outdir."""
    import torch
    from transformers import CLIPModel

    if outdir.exists() and not outdir.is_dir():
        raise ModelError(f"{outdir} exists and is not a folder")
    if outdir.is_dir() and any(outdir.iterdir()) and not (outdir / "config.json").is_file():
        raise ModelError(f"{outdir} is a non-empty folder that holds no model; pick a new folder")
    outdir.mkdir(parents=True, exist_ok=True)
    tokenizer = train_tokenizer()
    torch.manual_seed(seed)
    model: Any = CLIPModel(clip_config(arch, len(tokenizer), embed_dim))
    model.eval()
    model.save_pretrained(outdir)
    tokenizer.save_pretrained(outdir)
    raw = orjson.dumps(preprocessor_config(), option=orjson.OPT_INDENT_2)
    (outdir / "preprocessor_config.json").write_bytes(raw)
    marker = {"random_weights": True, "arch": arch, "seed": seed, "by": "harclip init-model"}
    (outdir / RANDOM_MARKER).write_bytes(orjson.dumps(marker, option=orjson.OPT_INDENT_2))
    return outdir
