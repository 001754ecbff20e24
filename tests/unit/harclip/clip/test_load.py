"""Loading a CLIP from a folder, and the one-line errors when it cannot be loaded."""

from __future__ import annotations

from pathlib import Path

import pytest

from harclip.clip.init import init_model
from harclip.clip.load import load_clip
from harclip.errors import ModelError


def test_load_folder_reads_preprocessing_and_sizes(tiny_model_dir: Path) -> None:
    clip = load_clip(tiny_model_dir)
    assert clip.image_size == 224
    assert clip.mean == pytest.approx((0.48145466, 0.4578275, 0.40821073))
    assert clip.std == pytest.approx((0.26862954, 0.26130258, 0.27577711))
    assert clip.embed_dim == 32
    assert clip.context_length == 77
    assert clip.logit_scale > 1
    assert not clip.model.training


def test_tokenizer_and_config_agree_on_special_tokens(tiny_model_dir: Path) -> None:
    clip = load_clip(tiny_model_dir)
    tok = clip.tokenizer
    assert tok.convert_tokens_to_ids(["<|startoftext|>", "<|endoftext|>"]) == [0, 1]
    assert tok.pad_token == tok.eos_token == "<|endoftext|>"
    # the text tower pools at the first eos, which must be the tokenizer's eos
    assert clip.model.config.text_config.eos_token_id == 1
    assert len(tok) <= clip.model.config.text_config.vocab_size
    ids = tok("a photo of a person riding a bike.")["input_ids"]
    assert ids[0] == 0 and ids[-1] == 1 and 1 not in ids[1:-1]


def test_missing_folder_is_one_clear_line(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="does not exist"):
        load_clip(tmp_path / "nope")


def test_folder_without_model_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="harclip init-model"):
        load_clip(tmp_path)


def test_unreachable_hub_says_how_to_proceed(monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ModelError) as e:
        load_clip("no-such-org/no-such-clip")
    msg = str(e.value)
    assert "\n" not in msg
    assert "unreachable" in msg and "harclip init-model" in msg and "HF_HUB_OFFLINE" in msg


def test_init_refuses_a_folder_holding_something_else(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ModelError, match="non-empty folder"):
        init_model(tmp_path, "tiny")


def test_init_model_command_writes_a_loadable_model(tmp_path: Path) -> None:
    from harclip.cli import main

    assert main(["init-model", str(tmp_path / "m"), "--arch", "tiny", "--seed", "3"]) == 0
    files = {p.name for p in (tmp_path / "m").iterdir()}
    assert {
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "preprocessor_config.json",
    } <= files
    assert load_clip(tmp_path / "m").embed_dim == 32
