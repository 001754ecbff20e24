"""The torch-free text path: tokenisation, embeddings, zero-shot heads, label sets."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from harclip.errors import ModelError
from harclip.model.bundle import Bundle
from harclip.model.text import build_head


def test_tokenize_pads_and_truncates_to_the_context(tiny_bundle: Path) -> None:
    text = Bundle.load(tiny_bundle).text_encoder()
    ids, mask = text.tokenize(["a photo", "word " * 200])
    assert ids.shape == mask.shape == (2, 77) and ids.dtype == np.int64
    assert (
        ids[0, 0] == 0 and ids[0, 3] == 1 and (ids[0, 4:] == 1).all()
    )  # <bos> a photo <eos> pad..
    assert mask[0].sum() == 4 and mask[1].sum() == 77
    assert ids[1, -1] == 1  # truncated, still ends with <eos>


def test_encode_is_normalised_and_batched(tiny_bundle: Path) -> None:
    text = Bundle.load(tiny_bundle).text_encoder()
    texts = [f"a photo of {i} people" for i in range(150)]  # more than one ONNX batch
    emb = text.encode(texts)
    assert emb.shape == (150, 32)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(text.encode(texts[100:101])[0], emb[100], atol=1e-6)
    assert text.encode([]).shape == (0, 32)


def test_build_head_is_the_renormalised_prompt_mean(tiny_bundle: Path) -> None:
    text = Bundle.load(tiny_bundle).text_encoder()
    labels = {"waving": ["a person waving.", "someone waves hello."], "jumping": ["jumping."]}
    head = build_head(text, labels, logit_scale=10.0, version=7)
    mean = text.encode(labels["waving"]).mean(axis=0)
    np.testing.assert_allclose(head.weight[:, 0], mean / np.linalg.norm(mean), atol=1e-6)
    assert (head.labels, head.version, head.kind) == (("waving", "jumping"), 7, "zero-shot")
    assert not head.bias.any()
    with pytest.raises(ModelError, match="no prompts"):
        build_head(text, {"x": []}, logit_scale=1.0, version=1)
    with pytest.raises(ModelError, match="at least one label"):
        build_head(text, {}, logit_scale=1.0, version=1)


def test_label_change_without_torch(tiny_bundle: Path, tmp_path: Path) -> None:
    """A new head from the bundle alone, in a process that must never import torch."""
    bundle = shutil.copytree(tiny_bundle, tmp_path / "b")
    script = textwrap.dedent(
        f"""
        import sys
        from harclip.model.bundle import Bundle
        from harclip.model.text import build_head
        b = Bundle.load({str(bundle)!r})
        old = b.load_head()
        labels = {{"waving": ["a person waving."], "sitting": ["sitting."]}}
        head = build_head(b.text_encoder(), labels,
                          logit_scale=old.logit_scale, version=old.version + 1)
        b.save_head(head)
        new = Bundle.load({str(bundle)!r}).load_head()
        assert new.labels == ("waving", "sitting") and new.version == old.version + 1
        heavy = [m for m in ("torch", "transformers") if m in sys.modules]
        assert not heavy, heavy
        print("ok")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
