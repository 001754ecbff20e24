"""The model's sections: which bundle and engine (`HARCLIP_MODEL__*`) and how workers batch
frames (`HARCLIP_BATCHING__*`)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from harclip import DECODER_MAX_PIXELS
from harclip.config.base import _Section

EngineName = Literal["onnx", "onnx-int8", "torchscript", "torch", "tensorrt"]
# What a user asks for: one engine, or "auto" (harclip.engines.auto picks one and says why).
EngineChoice = Literal["auto", "onnx", "onnx-int8", "torchscript", "torch", "tensorrt"]


class ModelSettings(_Section):
    bundle: Path | None = Field(None, description="model bundle folder (harclip export --output)")
    engine: EngineChoice = Field(
        "auto", description="auto: the fastest engine the bundle validated for this machine"
    )
    hf_model: str = Field("openai/clip-vit-base-patch32", description="hub id or local folder")
    providers: tuple[str, ...] = Field(
        ("CPUExecutionProvider",),
        description="ONNX Runtime execution providers in order of preference",
    )
    torch_dtype: Literal["fp32", "fp16", "bf16"] = "fp32"
    tensorrt_precision: Literal["fp32", "fp16", "int8"] = Field(
        "fp16", description="which encoder.<precision>.plan the tensorrt engine runs"
    )
    device: str = Field(
        "auto", description="torch device: auto (cuda when a CUDA device is visible), cpu, cuda[:N]"
    )
    gpu_decode: bool = Field(True, description="decode JPEGs on the GPU when the engine runs there")
    intra_op_threads: int = Field(0, ge=0, description="0: ONNX Runtime's default")
    intra_op_spinning: bool | None = Field(
        None,
        description="ONNX Runtime: let idle intra-op threads spin (session.intra_op."
        "allow_spinning). None: off in the inference worker and the API (their decode pools, "
        "sinks and event loop share the cores; docs/benchmarks.md), ONNX Runtime's default "
        "(on) elsewhere",
    )
    top_k: int = Field(5, ge=1)
    max_pixels: int = Field(
        40_000_000,
        ge=1,
        le=DECODER_MAX_PIXELS,
        description="decompression-bomb limit, pixels (the decoders' ceiling is 67,108,864)",
    )


class BatchingSettings(_Section):
    max_batch: int = Field(16, ge=1, le=1024)
    max_wait_ms: float = Field(10.0, ge=0)
    max_age_ms: float = Field(2000.0, gt=0, description="live frames older than this are dropped")
    decode_threads: int = Field(2, ge=1)
    max_inflight_batches: int = Field(2, ge=1)
    pipelined: bool = Field(
        True, description="false: one batch at a time, fetch only after the last commit (baseline)"
    )
