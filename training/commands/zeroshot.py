"""`zeroshot`: how well a CLIP classifies a split with text prompts alone, and which prompt set
works best: the project's prompt ensemble (harclip.labels templates), each template alone, and
the bare action phrase, in one table; the full report for the ensemble head.

Images are embedded once (PyTorch for a model, the bundle's engine for `--bundle`); each prompt
set only changes the head, built the way `harclip export` / `harclip labels` build heads.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from harclip.labels import PROMPT_TEMPLATES, phrase, prompts_for
from harclip.model.head import Head
from training import progress
from training.data.loader import eval_batches
from training.data.split import Manifest
from training.evaluation.metrics import classification_metrics, softmax
from training.evaluation.report import Predictions, write_report

HeadBuilder = Callable[[Mapping[str, Sequence[str]]], Head]


@dataclass(frozen=True)
class PromptSetResult:
    name: str
    prompts_per_class: int
    accuracy: float
    macro_f1: float
    top5_accuracy: float


def prompt_sets(classes: Sequence[str]) -> dict[str, dict[str, list[str]]]:
    """{set name: {class: [prompts]}}: the ensemble, each template alone, the bare phrase."""
    sets = {"ensemble (7 templates)": {c: prompts_for(c) for c in classes}}
    for t in PROMPT_TEMPLATES:
        sets[t.format("…")] = {c: prompts_for(c, (t,)) for c in classes}
    sets["action phrase only"] = {c: [phrase(c)] for c in classes}
    return sets


def compare(
    embeddings: np.ndarray, labels: np.ndarray, classes: Sequence[str], build: HeadBuilder
) -> tuple[list[PromptSetResult], dict[str, Head]]:
    """Every prompt set's metrics on the same image embeddings [N, D]."""
    results, heads = [], {}
    for name, label_set in prompt_sets(classes).items():
        head = build(label_set)
        m = classification_metrics(softmax(head.logits(embeddings)), labels, classes)
        per_class = len(next(iter(label_set.values())))
        results.append(PromptSetResult(name, per_class, m["accuracy"], m["macro_f1"],
                                       m["top5_accuracy"]))  # fmt: skip
        heads[name] = head
    return results, heads


def run_zeroshot(
    manifest: Manifest,
    split: str,
    out: Path,
    *,
    model: str | None = None,
    bundle: Path | None = None,
    batch: int = 32,
    show: bool = True,
) -> list[PromptSetResult]:
    """Embed `split` once, compare the prompt sets, write `out/prompt_sets.{md,json}` and the
    ensemble head's full report into `out`."""
    files = manifest.paths(split)
    if bundle is not None:
        embed, build, size, what = _bundle_side(bundle)
    else:
        assert model is not None
        with progress.step(f"load {model}", enabled=show):
            embed, build, size, what = _torch_side(model)
    parts = []
    with progress.bar(f"embed {split}", len(files), enabled=show) as advance:
        for images in eval_batches(files, size, batch):
            parts.append(embed(images))
            advance(len(images))
    embeddings = np.concatenate(parts)
    labels = np.array(manifest.label_ids(split))
    with progress.step("compare prompt sets", enabled=show):
        results, heads = compare(embeddings, labels, manifest.classes, build)
    out.mkdir(parents=True, exist_ok=True)
    best = max(results, key=lambda r: r.accuracy)
    (out / "prompt_sets.json").write_bytes(orjson.dumps(
        {"model": what, "split": split, "n": len(files), "best": best.name,
         "results": [r.__dict__ for r in results]}, option=orjson.OPT_INDENT_2))  # fmt: skip
    (out / "prompt_sets.md").write_text(_table(results, what, split, len(files)), encoding="utf-8")
    ensemble = heads[results[0].name]
    preds = Predictions(softmax(ensemble.logits(embeddings)).astype(np.float32), labels,
                        files, manifest.classes)  # fmt: skip
    about = {"model": what, "split": split, "head": "zero-shot, prompt ensemble",
             "split_fingerprint": manifest.fingerprint(split)}  # fmt: skip
    write_report(out, preds, title="Zero-shot evaluation", about=about)
    return results


def table_text(results: Sequence[PromptSetResult]) -> str:
    """The comparison as aligned plain text (the command prints it)."""
    width = max(len(r.name) for r in results)
    lines = [f"{'prompt set':<{width}}  prompts  accuracy  macro-F1  top-5"]
    for r in results:
        lines.append(f"{r.name:<{width}}  {r.prompts_per_class:>7}  {r.accuracy:>8.2%}  "
                     f"{r.macro_f1:>8.4f}  {r.top5_accuracy:>6.2%}")  # fmt: skip
    return "\n".join(lines)


def _table(results: Sequence[PromptSetResult], what: str, split: str, n: int) -> str:
    lines = [f"# Zero-shot prompt sets: {what}, {split} split ({n} images)", "",
             "| prompt set | prompts per class | accuracy | macro-F1 | top-5 |",
             "|---|---|---|---|---|"]  # fmt: skip
    for r in results:
        lines.append(f"| {r.name} | {r.prompts_per_class} | {r.accuracy:.2%} | "
                     f"{r.macro_f1:.4f} | {r.top5_accuracy:.2%} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def _torch_side(model: str) -> tuple[Callable[[np.ndarray], np.ndarray], HeadBuilder, int, str]:
    from harclip.clip.load import load_clip
    from harclip.clip.validate import pytorch_embed
    from training.model.classifier import text_head

    clip = load_clip(model)
    return pytorch_embed(clip), lambda ls: text_head(clip, ls), clip.image_size, model


def _bundle_side(
    bundle_dir: Path,
) -> tuple[Callable[[np.ndarray], np.ndarray], HeadBuilder, int, str]:
    from harclip.config import ModelSettings
    from harclip.engines import create_engine
    from harclip.model.bundle import Bundle
    from harclip.model.text import build_head

    bundle = Bundle.load(bundle_dir)
    engine = create_engine(bundle, "onnx", ModelSettings())
    text = bundle.text_encoder()
    scale = bundle.load_head().logit_scale

    def build(ls: Mapping[str, Sequence[str]]) -> Head:
        return build_head(text, ls, logit_scale=scale, version=1)

    return engine.embed, build, bundle.manifest.image_size, f"bundle {bundle_dir}"


def results_doc(results: Sequence[PromptSetResult]) -> list[dict[str, Any]]:
    return [r.__dict__ for r in results]
