"""Export a loaded CLIP into a model bundle (docs/internals.md): ONNX image and text towers,
tokenizer, zero-shot head, and on request INT8, TorchScript, the transformers folder, TensorRT.

The zero-shot head is built from `text_encoder.onnx` through `harclip.model.text` (the
torch-free path the run-time label changes use), so there is one way to make a head.
"""

from __future__ import annotations

import logging
import shutil
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import orjson

from harclip.clip.load import LoadedClip
from harclip.errors import ModelError
from harclip.labels import default_label_set
from harclip.messages import now_ms
from harclip.model.bundle import MANIFEST, Bundle, EngineFiles, Manifest
from harclip.model.head import Head

ExportFormat = Literal["onnx", "int8", "torchscript", "torch", "tensorrt"]
FORMATS: tuple[ExportFormat, ...] = ("onnx", "int8", "torchscript", "torch", "tensorrt")
Precision = Literal["fp32", "fp16", "int8"]
OPSET = 18
StepFn = Callable[[str], AbstractContextManager[object]]


@dataclass(frozen=True)
class ExportOptions:
    """What to export. ONNX fp32 (`encoder.onnx`), the text encoder and the head are always
    written: every other format and the torch-free label changes build on them."""

    formats: tuple[ExportFormat, ...] = ("onnx",)
    precision: Precision = "fp16"  # TensorRT plan precision
    batch_size: int = 8  # largest batch the TensorRT profile accepts; benchmark batch
    label_set: Mapping[str, Sequence[str]] | None = None  # default: harclip.labels
    name: str | None = None  # default: "<model folder or id tail>-har"
    version: str = "1"
    per_channel: bool = False  # INT8 weights per output channel (see bench/engine.py)
    # Photos to calibrate static INT8 on; with them "int8" builds dynamic and static INT8, checks
    # both against PyTorch, times both and keeps the faster at equal agreement (clip/quantize.py).
    calibration: Path | None = None
    calibration_images: int = 64
    int8_seconds: float = 2.0  # timing of each INT8 candidate


def export_bundle(
    clip: LoadedClip, output: Path, options: ExportOptions, step: StepFn | None = None
) -> Bundle:
    """Write the bundle to `output` (created, or updated if it already holds a bundle) and return
    it loaded. `step(title)` wraps each step (a progress display); nothing by default."""
    step = step or (lambda _title: nullcontext())
    unknown = set(options.formats) - set(FORMATS)
    if unknown:
        raise ModelError(f"unknown export format(s) {sorted(unknown)}; choose from {FORMATS}")
    if options.batch_size < 1:
        raise ModelError(f"batch size must be >= 1, got {options.batch_size}")
    if "tensorrt" in options.formats:
        from harclip.clip.tensorrt import import_tensorrt

        import_tensorrt()  # fail before the other steps' work, not after
    previous = _prepare_output(output)
    engines: EngineFiles = {}
    with step("image encoder -> encoder.onnx"):
        export_image_onnx(clip, output / "encoder.onnx")
        engines["onnx"] = "encoder.onnx"
    with step("text encoder -> text_encoder.onnx + tokenizer/"):
        export_text_onnx(clip, output / "text_encoder.onnx")
        clip.tokenizer.save_pretrained(output / "tokenizer")
    with step("zero-shot head -> head.safetensors + labels.json"):
        head = _zero_shot_head(clip, output, options.label_set, previous)
        head.save(output / "head.safetensors", output / "labels.json")
    metrics: dict[str, object] = {}
    validation: dict[str, object] = {}
    if "int8" in options.formats:
        if options.calibration is None:
            with step("INT8 quantization (dynamic) -> encoder.int8.onnx"):
                quantize_int8(
                    output / "encoder.onnx", output / "encoder.int8.onnx", options.per_channel
                )
            metrics["int8"] = {"kept": "dynamic", "why": "no calibration photos (--calibration)"}
        else:
            title = f"INT8 dynamic and static (calibrated on {options.calibration}), compared"
            with step(title + " -> encoder.int8.onnx"):
                report = _int8_pair(clip, head, output, options)
            metrics["int8"] = report
            validation = _int8_validation(report)
        engines["onnx-int8"] = "encoder.int8.onnx"
    if "torchscript" in options.formats:
        with step("TorchScript -> encoder.ts"):
            export_torchscript(clip, output / "encoder.ts")
            engines["torchscript"] = "encoder.ts"
    if "torch" in options.formats:
        with step("transformers folder -> hf/"):
            save_hf(clip, output / "hf")
            engines["torch"] = "hf"
    if "tensorrt" in options.formats:
        plan = f"encoder.{options.precision}.plan"
        with step(f"TensorRT {options.precision} -> {plan}"):
            build_tensorrt(
                output / "encoder.onnx", output / plan, clip.image_size,
                precision=options.precision, max_batch=options.batch_size,
            )  # fmt: skip
            engines["tensorrt"] = {options.precision: plan}
    manifest = Manifest(
        name=options.name or _default_name(clip.name),
        version=options.version,
        base_model=clip.name,
        created_at=now_ms(),
        image_size=clip.image_size,
        mean=clip.mean,
        std=clip.std,
        embed_dim=clip.embed_dim,
        context_length=clip.context_length,
        engines=engines,
        metrics=metrics,
        validation=validation,
        random_weights=clip.random_weights,
    )
    (output / MANIFEST).write_bytes(manifest.to_json())
    return Bundle.load(output)


def _int8_pair(
    clip: LoadedClip, head: Head, output: Path, options: ExportOptions
) -> dict[str, object]:
    from harclip.clip.quantize import build_int8

    assert options.calibration is not None
    return build_int8(
        clip, head, output / "encoder.onnx", output / "encoder.int8.onnx", options.calibration,
        per_channel=options.per_channel, n_images=options.calibration_images,
        batch=options.batch_size, seconds=options.int8_seconds,
    )  # fmt: skip


def _int8_validation(report: dict[str, object]) -> dict[str, object]:
    """The kept INT8 candidate's check against PyTorch, in `--validate`'s shape (which replaces
    it when given), so `engine: auto` can serve INT8 from this export alone."""
    check = report["check"]
    kept = report[str(report["kept"])]
    assert isinstance(check, dict) and isinstance(kept, dict)
    keys = ("max_abs_diff", "min_cosine", "top1_agreement", "error_bound", "decisive_images",
            "decisive_agreement")  # fmt: skip
    row = {k: kept[k] for k in keys}
    return {"images": check["images"], "source": check["source"], "engines": {"onnx-int8": row}}


def update_manifest(bundle: Bundle, **changes: object) -> None:
    """Replace some manifest fields (e.g. validation, metrics) and rewrite it atomically."""
    bundle.save_manifest(replace(bundle.manifest, **changes))  # type: ignore[arg-type]


def _prepare_output(output: Path) -> Head | None:
    """Create `output`; an existing bundle there is updated in place (its head returned so the
    new head's version follows it), any other non-empty folder is refused."""
    if output.exists() and not output.is_dir():
        raise ModelError(f"output {output} exists and is not a folder")
    if output.is_dir() and any(output.iterdir()):
        if not (output / MANIFEST).is_file():
            raise ModelError(
                f"output {output} is a non-empty folder without {MANIFEST}; pick a new one"
            )
        try:
            return Bundle.load(output).load_head()
        except ModelError:
            return None  # a broken bundle is overwritten
    output.mkdir(parents=True, exist_ok=True)
    return None


def _zero_shot_head(
    clip: LoadedClip,
    output: Path,
    label_set: Mapping[str, Sequence[str]] | None,
    previous: Head | None,
) -> Head:
    from harclip.model.head import next_version
    from harclip.model.text import TextEncoder, build_head

    encoder = TextEncoder(
        output / "text_encoder.onnx", output / "tokenizer", context_length=clip.context_length
    )
    version = next_version(previous.version if previous is not None else 0)
    labels = label_set if label_set is not None else default_label_set()
    return build_head(encoder, labels, logit_scale=clip.logit_scale, version=version)


def _default_name(model: str) -> str:
    tail = Path(model.rstrip("/")).name or "clip"
    return f"{tail}-har"


@contextmanager
def _quiet() -> Iterator[None]:
    """Silence the tracer's and the legacy exporter's warnings: the graphs are checked against
    PyTorch by the tests and by `--validate`, which is where a wrong trace would show."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logging.disable(logging.WARNING)  # onnxruntime.quantization logs advice on the root logger
        try:
            yield
        finally:
            logging.disable(logging.NOTSET)


def export_image_onnx(clip: LoadedClip, path: Path, opset: int = OPSET) -> None:
    """`encoder.onnx`: `pixels` uint8 [N, S, S, 3] -> `embedding` float32 [N, D], batch dynamic."""
    import torch

    from harclip.clip.wrappers import ImageEncoder

    module = ImageEncoder(clip.model, clip.mean, clip.std, clip.image_size).eval()
    s = clip.image_size
    example = torch.zeros((2, s, s, 3), dtype=torch.uint8)
    # The TorchScript-based exporter: fast, and the dynamo one (torch 2.15) names an internal
    # value "embedding" too, which breaks the output name this contract fixes.
    with _quiet(), torch.inference_mode():
        torch.onnx.export(
            module, (example,), str(path),
            input_names=["pixels"], output_names=["embedding"],
            dynamic_axes={"pixels": {0: "batch"}, "embedding": {0: "batch"}},
            opset_version=opset, dynamo=False,
        )  # fmt: skip


def export_text_onnx(clip: LoadedClip, path: Path, opset: int = OPSET) -> None:
    """`text_encoder.onnx`: `input_ids`, `attention_mask` int64 [N, L] -> `text_embedding`."""
    import torch

    from harclip.clip.wrappers import TextEncoderModule, tokenize

    module = TextEncoderModule(clip.model).eval()
    enc = tokenize(clip.tokenizer, ["a photo of a person", "a"], clip.context_length)
    with _quiet(), torch.inference_mode():
        torch.onnx.export(
            module, (enc["input_ids"], enc["attention_mask"]), str(path),
            input_names=["input_ids", "attention_mask"], output_names=["text_embedding"],
            dynamic_axes={
                "input_ids": {0: "batch", 1: "length"},
                "attention_mask": {0: "batch", 1: "length"},
                "text_embedding": {0: "batch"},
            },
            opset_version=opset, dynamo=False,
        )  # fmt: skip


def quantize_int8(src: Path, dst: Path, per_channel: bool = False) -> None:
    """Dynamic INT8 quantization (weights int8, activations quantized at run time) of the
    MatMul/Gemm weights; the uint8 `pixels` input and the float output stay as they are."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with _quiet():
        quantize_dynamic(
            model_input=src,
            model_output=dst,
            weight_type=QuantType.QInt8,
            per_channel=per_channel,
            op_types_to_quantize=["MatMul", "Gemm"],
        )


def export_torchscript(clip: LoadedClip, path: Path) -> None:
    """`encoder.ts`: the traced `ImageEncoder`, `forward(pixels uint8 [N, S, S, 3])`."""
    import torch

    from harclip.clip.wrappers import ImageEncoder

    module = ImageEncoder(clip.model, clip.mean, clip.std, clip.image_size).eval()
    s = clip.image_size
    example = torch.zeros((2, s, s, 3), dtype=torch.uint8)
    with _quiet(), torch.no_grad():
        traced = torch.jit.trace(module, (example,), check_trace=False)  # type: ignore[no-untyped-call]
        traced = torch.jit.freeze(traced.eval())
    traced.save(str(path))


def save_hf(clip: LoadedClip, folder: Path) -> None:
    """The transformers folder (weights, config, tokenizer, preprocessor config) for the torch
    engine and for fine-tuning."""
    from harclip.clip.init import preprocessor_config

    if folder.exists():
        shutil.rmtree(folder)
    clip.model.save_pretrained(folder)
    clip.tokenizer.save_pretrained(folder)
    pre = preprocessor_config(clip.image_size) | {
        "image_mean": list(clip.mean),
        "image_std": list(clip.std),
    }
    (folder / "preprocessor_config.json").write_bytes(orjson.dumps(pre, option=orjson.OPT_INDENT_2))


def build_tensorrt(
    onnx_path: Path, plan_path: Path, image_size: int, *, precision: Precision, max_batch: int
) -> None:
    """A TensorRT engine built from `encoder.onnx` for batches 1..max_batch."""
    from harclip.clip.tensorrt import build_plan

    build_plan(onnx_path, plan_path, image_size, precision=precision, max_batch=max_batch)
