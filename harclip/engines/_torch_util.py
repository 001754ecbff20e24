"""What the torch-based engines share: a lazy torch import with a clear error, thread setup."""

from __future__ import annotations

from types import ModuleType

from harclip.errors import EngineUnavailable


def import_torch(engine: str) -> ModuleType:
    """`torch`, or `EngineUnavailable` saying how to install it."""
    try:
        import torch
    except ImportError:
        raise EngineUnavailable(
            f"engine {engine!r} needs PyTorch, which is not installed here: "
            "pip install 'harclip[torch]' (or use the onnx engine, which needs no torch)"
        ) from None
    return torch


def set_threads(torch: ModuleType, threads: int) -> None:
    """Intra-op threads for torch; 0 keeps torch's default (one per core)."""
    if threads > 0:
        torch.set_num_threads(threads)


def check_device(torch: ModuleType, device: str, engine: str) -> None:
    """`EngineUnavailable` when `device` asks for CUDA and torch sees none."""
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise EngineUnavailable(
            f"engine {engine!r} was asked for device {device!r} but torch sees no CUDA device "
            "here; set HARCLIP_MODEL__DEVICE=cpu or install a CUDA build of torch"
        )
