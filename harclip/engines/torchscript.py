"""TorchScript engine over `encoder.ts`: `forward(pixels uint8 [N, S, S, 3]) -> [N, D]`."""

from __future__ import annotations

import warnings
from pathlib import Path

from harclip.engines._torch_util import TorchModuleEngine
from harclip.errors import ModelError


class TorchScriptEngine(TorchModuleEngine):
    """The exported TorchScript image tower (normalisation inside), on CPU or CUDA."""

    name = "torchscript"

    def __init__(
        self, path: Path, *, image_size: int, embed_dim: int, device: str = "cpu", threads: int = 0
    ) -> None:
        super().__init__(image_size=image_size, embed_dim=embed_dim, device=device, threads=threads)
        self.label = f"torchscript/{device}"
        try:
            with warnings.catch_warnings():  # torch 2.10+: "torch.jit.load is deprecated"
                warnings.filterwarnings("ignore", "`torch.jit.load` is deprecated", FutureWarning)
                module = self._torch.jit.load(str(path), map_location=device)
        except (RuntimeError, ValueError, OSError) as e:
            raise ModelError(f"torchscript: cannot load {path}: {e}") from None
        self._module = module.eval()
