"""Which device a torch engine runs on: `auto` is CUDA when the driver shows a device (asked
through libcuda, without importing torch), else the CPU."""

from __future__ import annotations

import ctypes
import functools


def cuda_device_count() -> int:
    """CUDA devices the driver shows this process (honours CUDA_VISIBLE_DEVICES); 0 when there is
    no NVIDIA driver. Asks libcuda directly, so nothing heavy (torch) is imported."""
    return _cuda_device_count()


@functools.cache
def _cuda_device_count() -> int:
    for lib in ("libcuda.so.1", "libcuda.so"):
        try:
            cuda = ctypes.CDLL(lib)
        except OSError:
            continue
        count = ctypes.c_int(0)
        if cuda.cuInit(0) != 0 or cuda.cuDeviceGetCount(ctypes.byref(count)) != 0:
            return 0
        return int(count.value)
    return 0


def resolve_device(device: str) -> str:
    """`auto` → `cuda` when a CUDA device is visible, else `cpu`; any other value unchanged."""
    if device != "auto":
        return device
    return "cuda" if cuda_device_count() > 0 else "cpu"
