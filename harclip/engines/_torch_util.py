"""What the torch-based engines share: a lazy torch import with a clear error, thread and
device setup, and `embed`/`close` over a module that takes uint8 NHWC pixels; on a CUDA device
through `harclip.engines._cuda.CudaRunner` (pinned buffers, copy/compute streams, CUDA graphs)."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np

from harclip.engines._checks import check_embeddings, check_images, empty
from harclip.errors import EngineUnavailable, ModelError


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


class TorchModuleEngine:
    """An engine that runs `self._module(uint8 [N, S, S, 3]) -> [N, D]` with torch; a subclass
    calls `__init__` first, then loads `self._module`."""

    name: str
    label: str

    def __init__(self, *, image_size: int, embed_dim: int, device: str, threads: int) -> None:
        self._torch = import_torch(self.name)
        check_device(self._torch, device, self.name)
        set_threads(self._torch, threads)
        self.image_size = image_size
        self.embed_dim = embed_dim
        self.device = device
        # on CUDA, `embed` also takes a uint8 [N, S, S, 3] tensor already on the device
        self.takes_tensors = device.startswith("cuda")
        self._module: Any = None
        self._runner: Any = None  # CudaRunner, made on the first CUDA batch

    def embed(self, images: Any) -> np.ndarray:
        """uint8 [N, S, S, 3] RGB (numpy; on CUDA also a device tensor) → float32 [N, D],
        L2-normalised."""
        torch = self._torch
        if isinstance(images, torch.Tensor):
            images = self._check_tensor(images)
        else:
            images = check_images(images, self.image_size, self.name)
        if len(images) == 0:
            return empty(self.embed_dim)
        if self._module is None:
            raise ModelError(f"{self.name}: engine is closed")
        if self.takes_tensors:
            out = self._cuda().run(images)
        else:
            with torch.inference_mode():
                pixels = torch.from_numpy(images).to(self.device)
                out = self._module(pixels).float().cpu().numpy()
        return check_embeddings(out, len(images), self.embed_dim, self.name)

    def _cuda(self) -> Any:
        if self._runner is None:
            from harclip.engines._cuda import CudaRunner

            self._runner = CudaRunner(self._torch, self._module, image_size=self.image_size,
                                      embed_dim=self.embed_dim, device=self.device)  # fmt: skip
        return self._runner

    def _check_tensor(self, images: Any) -> Any:
        """A torch tensor input must be uint8 [N, S, S, 3] on this engine's CUDA device."""
        s = self.image_size
        if not self.takes_tensors or images.device.type != "cuda":
            raise ModelError(f"{self.name}: torch tensors are taken on CUDA only; pass numpy")
        if images.dtype != self._torch.uint8 or tuple(images.shape[1:]) != (s, s, 3):
            raise ModelError(f"{self.name}: expected a uint8 [N, {s}, {s}, 3] tensor, got "
                             f"{images.dtype} {list(images.shape)}")  # fmt: skip
        return images.contiguous()

    def close(self) -> None:
        self._module = None
        self._runner = None
