"""Encoded images → uint8 [N, S, S, 3] RGB on a torch device, for engines that run there.

JPEGs are decoded as one batch by nvJPEG (`torchvision.io.decode_jpeg(list, device="cuda")`),
resized (shortest side → S, antialiased bicubic as PIL and `CLIPImageProcessor` do) and
centre-cropped on the GPU, images of one size in one call; so a frame never visits host memory
as pixels. A frame nvJPEG refuses (PNG, WebP, CMYK, damaged data) falls back alone to the CPU
decoder (`harclip.model.preprocess.decode_image`, which says why when it cannot decode either).
Every header is checked first, on the CPU, exactly as on the CPU path: decompression bombs and
truncated files are refused before any decoding.

The same code runs with device="cpu" (torchvision's libjpeg-turbo), which is how it is tested
where no GPU is. Work is queued on the decoder's own CUDA stream and synchronised before
`decode` returns, so a decode thread overlaps with the engine's stream.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from contextlib import nullcontext
from types import ModuleType
from typing import Any

import numpy as np

from harclip.errors import DecodeError, EngineUnavailable
from harclip.model.imageio import check_header
from harclip.model.preprocess import decode_image

log = logging.getLogger(__name__)

_MAX_ASPECT = 8.0  # as harclip.model.preprocess: beyond it the long side is cropped first


def import_torchvision() -> tuple[ModuleType, ModuleType]:
    """(torch, torchvision.io), or `EngineUnavailable` saying what to install."""
    try:
        import torch
        import torchvision.io as tvio
    except ImportError:
        raise EngineUnavailable(
            "GPU decoding needs torch and torchvision: pip install 'harclip[torch]'"
        ) from None
    return torch, tvio


class TorchDecoder:
    """`decode(list of encoded images) -> (uint8 [N, S, S, 3] tensor on device, errors)`."""

    def __init__(self, size: int, *, max_pixels: int, device: str = "cuda") -> None:
        self._torch, self._tvio = import_torchvision()
        torch = self._torch
        self.size = size
        self.max_pixels = max_pixels
        self.device = torch.device(device)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise EngineUnavailable(f"GPU decoding on {device}: torch sees no CUDA device")
        self._stream = torch.cuda.Stream(self.device) if self.device.type == "cuda" else None
        self.fallbacks = 0  # frames decoded on the CPU because nvJPEG / libjpeg refused them

    def decode(self, datas: Sequence[bytes]) -> tuple[Any, list[DecodeError | None]]:
        """uint8 [N, S, S, 3] RGB on the device (rows of failed images are zeros) and one error
        or None per input, in order."""
        torch = self._torch
        n, s = len(datas), self.size
        errors: list[DecodeError | None] = [None] * n
        jpegs: list[int] = []
        others: list[int] = []
        for i, data in enumerate(datas):
            try:
                header = check_header(data, max_pixels=self.max_pixels)
            except DecodeError as e:
                errors[i] = e
                continue
            (jpegs if header.format == "jpeg" and not header.has_alpha else others).append(i)
        stream = torch.cuda.stream(self._stream) if self._stream is not None else nullcontext()
        with stream, torch.inference_mode():
            out = torch.zeros((n, s, s, 3), dtype=torch.uint8, device=self.device)
            decoded = self._decode_jpegs([datas[i] for i in jpegs])
            ok = [(i, img) for i, img in zip(jpegs, decoded, strict=True) if img is not None]
            others += [i for i, img in zip(jpegs, decoded, strict=True) if img is None]
            self._resize_into(out, ok)
            for i in sorted(others):  # one at a time, on the CPU
                try:
                    pixels = decode_image(datas[i], s, max_pixels=self.max_pixels)
                except DecodeError as e:
                    errors[i] = e
                    continue
                out[i].copy_(torch.from_numpy(pixels))
            self.fallbacks += len(others)
            if self._stream is not None:
                self._stream.synchronize()  # the engine's stream may read `out` from now on
        return out, errors

    def _decode_jpegs(self, datas: list[bytes]) -> list[Any]:
        """[3, H, W] uint8 tensors on the device, None where the decoder refused a frame: one
        batched call; if it fails, each frame alone (the batched call returns nothing partial)."""
        if not datas:
            return []
        torch, tvio = self._torch, self._tvio
        raw = [torch.frombuffer(bytearray(d), dtype=torch.uint8) for d in datas]
        rgb = tvio.ImageReadMode.RGB
        with warnings.catch_warnings():  # torchvision 0.29 deprecates its decoders for torchcodec
            warnings.simplefilter("ignore", DeprecationWarning)
            try:
                return list(tvio.decode_jpeg(raw, mode=rgb, device=self.device))
            except RuntimeError:
                pass
            out: list[Any] = []
            for r in raw:
                try:
                    out.append(tvio.decode_jpeg(r, mode=rgb, device=self.device))
                except RuntimeError:
                    out.append(None)
            return out

    def _resize_into(self, out: Any, images: list[tuple[int, Any]]) -> None:
        """Shortest side → S (antialiased bicubic), centre crop, into rows of `out` [N, S, S, 3];
        images of one size go through one interpolate call."""
        torch = self._torch
        groups: dict[tuple[int, int], list[tuple[int, Any]]] = {}
        for i, img in images:
            img = _limit_aspect(img)
            groups.setdefault((int(img.shape[1]), int(img.shape[2])), []).append((i, img))
        for (h, w), items in groups.items():
            rows = [i for i, _ in items]
            batch = torch.stack([img for _, img in items])  # [G, 3, H, W] uint8
            new_h, new_w = resized_shape(h, w, self.size)
            if (new_h, new_w) != (h, w):
                batch = torch.nn.functional.interpolate(
                    batch.float(), size=(new_h, new_w), mode="bicubic", antialias=True,
                    align_corners=False,
                ).round_().clamp_(0, 255).to(torch.uint8)  # fmt: skip
            top, left = (new_h - self.size) // 2, (new_w - self.size) // 2
            crop = batch[:, :, top : top + self.size, left : left + self.size]
            out[rows] = crop.permute(0, 2, 3, 1)  # [G, 3, S, S] -> [G, S, S, 3]


def resized_shape(h: int, w: int, size: int) -> tuple[int, int]:
    """(H', W') after the shortest side goes to `size`, the long side truncated to an int, as
    `CLIPImageProcessor` (and harclip.model.preprocess) do."""
    short, long = min(h, w), max(h, w)
    new_long = int(size * long / short)
    return (new_long, size) if w <= h else (size, new_long)


def _limit_aspect(img: Any) -> Any:
    h, w = int(img.shape[1]), int(img.shape[2])
    if max(h, w) <= _MAX_ASPECT * min(h, w):
        return img
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    return img[:, top : top + side, left : left + side]


def stack_pixels(rows: Sequence[Any]) -> Any:
    """N × uint8 [S, S, 3] → [N, S, S, 3]: a numpy array, or a torch tensor on the rows' device
    when the rows are tensors (decoded on the GPU)."""
    if not rows or isinstance(rows[0], np.ndarray):
        return np.stack(rows)
    import torch

    return torch.stack(list(rows))


def decoder_for(engine: Any, size: int, *, max_pixels: int, enabled: bool) -> TorchDecoder | None:
    """A GPU decoder feeding `engine` when it runs on CUDA and takes device tensors (the torch
    engines); None (decode on the CPU) otherwise or when torchvision is missing."""
    device = str(getattr(engine, "device", "cpu"))
    if not enabled or not device.startswith("cuda") or not getattr(engine, "takes_tensors", False):
        return None
    try:
        decoder = TorchDecoder(size, max_pixels=max_pixels, device=device)
    except EngineUnavailable as e:
        log.warning("decoding on the CPU: %s", e)
        return None
    log.info("decoding JPEGs on %s (nvJPEG), CPU fallback per frame", device)
    return decoder
