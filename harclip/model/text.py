"""The text tower without torch: `text_encoder.onnx` + the `tokenizers` tokenizer of a bundle.

Used to build zero-shot heads from a label set (at export time and when labels change at run
time), and to embed text queries for the search API.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from harclip.errors import ModelError
from harclip.model.head import Head

BOS_TOKEN = "<|startoftext|>"
EOS_TOKEN = "<|endoftext|>"
_BATCH = 64  # texts per ONNX run; keeps memory flat for large label sets


class TextEncoder:
    """Embeds texts like CLIP's tokenizer + text tower: `<bos> tokens <eos>`, padded with the pad
    token to `context_length`, truncated to fit."""

    def __init__(
        self,
        onnx_path: Path,
        tokenizer_dir: Path,
        *,
        context_length: int,
        intra_op_threads: int = 0,
        providers: Sequence[str] = ("CPUExecutionProvider",),
    ) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        tok_file = tokenizer_dir / "tokenizer.json"
        try:
            self._tok = Tokenizer.from_file(str(tok_file))
        except Exception as e:  # tokenizers raises a bare Exception on a bad file
            raise ModelError(f"cannot load tokenizer {tok_file}: {e}") from None
        self._tok.no_padding()
        self._tok.no_truncation()
        bos, eos = self._tok.token_to_id(BOS_TOKEN), self._tok.token_to_id(EOS_TOKEN)
        if bos is None or eos is None:
            raise ModelError(f"tokenizer {tok_file} lacks {BOS_TOKEN} or {EOS_TOKEN}")
        self._bos, self._eos = bos, eos
        self._pad = self._pad_id(tokenizer_dir)
        if context_length < 3:
            raise ModelError(f"context_length must be at least 3, got {context_length}")
        self.context_length = context_length
        opts = ort.SessionOptions()
        if intra_op_threads > 0:
            opts.intra_op_num_threads = intra_op_threads
        try:
            self._session = ort.InferenceSession(str(onnx_path), opts, providers=list(providers))
        except Exception as e:  # onnxruntime raises its own Fail/InvalidGraph types
            raise ModelError(f"cannot load text encoder {onnx_path}: {e}") from None
        out = self._session.get_outputs()[0]
        self.embed_dim = int(out.shape[-1]) if isinstance(out.shape[-1], int) else 0

    def _pad_id(self, tokenizer_dir: Path) -> int:
        """The pad token of the transformers tokenizer config beside tokenizer.json (CLIP pads
        with <|endoftext|>); the eos id when none is named."""
        import orjson

        cfg = tokenizer_dir / "tokenizer_config.json"
        name = EOS_TOKEN
        if cfg.is_file():
            try:
                doc = orjson.loads(cfg.read_bytes())
            except orjson.JSONDecodeError as e:
                raise ModelError(f"{cfg} is not valid JSON: {e}") from None
            pad = doc.get("pad_token") if isinstance(doc, dict) else None
            if isinstance(pad, dict):
                pad = pad.get("content")
            if isinstance(pad, str):
                name = pad
        pid = self._tok.token_to_id(name)
        return self._eos if pid is None else int(pid)

    def tokenize(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """input_ids, attention_mask: int64 [N, context_length] each."""
        n, length = len(texts), self.context_length
        ids = np.full((n, length), self._pad, dtype=np.int64)
        mask = np.zeros((n, length), dtype=np.int64)
        for i, enc in enumerate(self._tok.encode_batch(list(texts), add_special_tokens=False)):
            row = [self._bos, *enc.ids[: length - 2], self._eos]
            ids[i, : len(row)] = row
            mask[i, : len(row)] = 1
        return ids, mask

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Texts -> float32 [N, D] embeddings, L2-normalised."""
        if isinstance(texts, str):
            raise TypeError("encode takes a sequence of texts, not one string")
        parts = []
        for start in range(0, len(texts), _BATCH):
            ids, mask = self.tokenize(texts[start : start + _BATCH])
            (emb,) = self._session.run(
                ["text_embedding"], {"input_ids": ids, "attention_mask": mask}
            )
            parts.append(np.asarray(emb, dtype=np.float32))
        if not parts:
            return np.zeros((0, self.embed_dim), dtype=np.float32)
        return np.concatenate(parts)


def class_weights(encoder: TextEncoder, label_set: Mapping[str, Sequence[str]]) -> np.ndarray:
    """float32 [D, C]: per class the re-normalised mean of its normalised prompt embeddings."""
    cols = []
    for label, prompts in label_set.items():
        if not prompts:
            raise ModelError(f"label {label!r} has no prompts")
        mean = encoder.encode(list(prompts)).mean(axis=0)
        norm = float(np.linalg.norm(mean))
        if norm == 0.0:
            raise ModelError(f"the prompts of label {label!r} cancel out (zero mean embedding)")
        cols.append(mean / norm)
    return np.stack(cols, axis=1).astype(np.float32)


def build_head(
    encoder: TextEncoder,
    label_set: Mapping[str, Sequence[str]],
    *,
    logit_scale: float,
    version: int,
) -> Head:
    """A zero-shot head for `label_set` ({label: [prompt, ...]}), bias zero."""
    if not label_set:
        raise ModelError("a label set needs at least one label")
    for label in label_set:
        if not isinstance(label, str) or not label.strip():
            raise ModelError(f"label names must be non-empty strings, got {label!r}")
    weight = class_weights(encoder, label_set)
    return Head(
        labels=tuple(label_set),
        weight=weight,
        bias=np.zeros(weight.shape[1], dtype=np.float32),
        logit_scale=logit_scale,
        version=version,
        kind="zero-shot",
        prompts={k: list(v) for k, v in label_set.items()},
    )
