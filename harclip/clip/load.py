"""Load a CLIP through transformers from a Hugging Face hub id or a local folder."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from harclip.clip.init import OPENAI_MEAN, OPENAI_STD, RANDOM_MARKER
from harclip.errors import ModelError

DEFAULT_MODEL = "openai/clip-vit-base-patch32"


@dataclass(frozen=True)
class LoadedClip:
    """A CLIPModel (eval mode, CPU, fp32) with its tokenizer and preprocessing constants."""

    name: str  # as given: hub id or folder
    model: Any  # transformers CLIPModel
    tokenizer: Any  # transformers CLIPTokenizer(Fast)
    image_size: int  # pixels, square model input
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    # the weights are `init-model`'s random initialisation (its marker file is in the folder)
    random_weights: bool = False

    @property
    def embed_dim(self) -> int:
        return int(self.model.config.projection_dim)

    @property
    def context_length(self) -> int:
        return int(self.model.config.text_config.max_position_embeddings)

    @property
    def logit_scale(self) -> float:
        """The multiplier of cosine similarities (exp of the learned log scale)."""
        return float(self.model.logit_scale.detach().exp())


def _looks_like_path(name: str) -> bool:
    return name.startswith((".", "/", "~")) or name.count("/") != 1 or Path(name).exists()


def load_clip(name_or_path: str | Path = DEFAULT_MODEL) -> LoadedClip:
    """A CLIP from a local folder (as `init-model` or `save_pretrained` write it) or a hub id.

    `ModelError` in one line when the folder is not a model or the hub cannot be reached."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # type: ignore[no-untyped-call]
    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    name = str(name_or_path)
    if _looks_like_path(name):
        folder = Path(name).expanduser()
        if not folder.is_dir():
            raise ModelError(f"model folder {folder} does not exist")
        if not (folder / "config.json").is_file():
            raise ModelError(
                f"{folder} holds no model (no config.json); create one with "
                f"`harclip init-model {folder}` or pass a hub id such as {DEFAULT_MODEL}"
            )
        return _load(str(folder), name)
    return _load(name, name)


def _load(source: str, name: str) -> LoadedClip:
    try:
        return _from_pretrained(source, name, local_files_only=True)  # a folder or the hub cache
    except ModelError:
        if Path(source).is_dir():
            raise
    if not _hub_reachable():
        raise _hub_error(name, OSError("unreachable")) from None
    return _from_pretrained(source, name, local_files_only=False)


def _from_pretrained(source: str, name: str, *, local_files_only: bool) -> LoadedClip:
    from transformers import AutoTokenizer, CLIPModel

    try:
        model: Any = CLIPModel.from_pretrained(source, local_files_only=local_files_only)
        model.eval()
        tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=local_files_only)
        pre = _preprocessor_config(source, local_files_only)
    except OSError as e:
        raise _hub_error(name, e) from None
    except ValueError as e:  # wrong model type in config.json and the like
        raise ModelError(f"cannot load CLIP {name!r}: {e}") from None
    size = pre.get("crop_size", model.config.vision_config.image_size)
    if isinstance(size, dict):
        size = size.get("height", model.config.vision_config.image_size)
    return LoadedClip(
        name=name,
        model=model,
        tokenizer=tokenizer,
        image_size=int(size),
        mean=_triple(pre.get("image_mean", OPENAI_MEAN)),
        std=_triple(pre.get("image_std", OPENAI_STD)),
        random_weights=Path(source, RANDOM_MARKER).is_file(),
    )


def _hub_reachable(timeout_s: float = 3.0) -> bool:
    """A TCP connect to the hub endpoint (HF_ENDPOINT honoured by huggingface_hub) within
    `timeout_s` seconds; spares the user the hub client's minute of retries when offline."""
    import socket
    from urllib.parse import urlsplit

    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return False
    url = urlsplit(constants.ENDPOINT)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname or "", port), timeout=timeout_s):
            return True
    except OSError:
        return False


def _preprocessor_config(source: str, local_files_only: bool) -> dict[str, Any]:
    from transformers.utils.hub import cached_file

    path = cached_file(
        source,
        "preprocessor_config.json",
        local_files_only=local_files_only,
        _raise_exceptions_for_missing_entries=False,
    )
    if path is None:
        return {}
    doc = orjson.loads(Path(path).read_bytes())
    return doc if isinstance(doc, dict) else {}


def _triple(v: Any) -> tuple[float, float, float]:
    a, b, c = (float(x) for x in v)
    return (a, b, c)


def _hub_error(name: str, e: OSError) -> ModelError:
    """One line: what failed and the three ways forward."""
    text = str(e)
    if "is not a local folder and is not a valid model identifier" in text or "404" in text:
        return ModelError(
            f"model {name!r} is neither a local folder nor a model on the Hugging Face hub"
        )
    return ModelError(
        f"cannot load model {name!r}: the Hugging Face hub is unreachable and the model is not in "
        "the local cache; run `harclip init-model DIR` for an offline random model, pass a local "
        "model folder, or download it where the hub is reachable and set HF_HUB_OFFLINE=1"
    )
