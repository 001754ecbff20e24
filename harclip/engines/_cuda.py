"""The torch engines' hot path on a CUDA device: pinned host buffers, host→device copies on their
own stream overlapped with compute, and CUDA graphs captured for the common batch sizes.

A batch runs in chunks (`plan`): at most the largest graph size each, the last one padded up to
the next captured size (rows are independent, so padding rows do not change the others). While
chunk k computes on the compute stream, chunk k+1 is copied host→device from a pinned buffer on
the copy stream. A graph is captured the first time its size is needed; a model that cannot be
captured runs eagerly (one warning), with the same copies and streams. Input that is already a
uint8 tensor on the device (decoded there, `harclip.engines.gpu_decode`) skips the copy.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

GRAPH_BATCHES = (1, 8, 16, 32, 64, 128)  # captured on first use; others pad up to the next


def plan(n: int, sizes: tuple[int, ...] = GRAPH_BATCHES) -> list[tuple[int, int, int]]:
    """(first row, rows, batch it runs at) per chunk covering `n` rows: chunks of the largest
    size, then the rest padded up to the smallest size that holds it."""
    top = max(sizes)
    out: list[tuple[int, int, int]] = []
    start = 0
    while n - start > top:
        out.append((start, top, top))
        start += top
    rest = n - start
    if rest > 0:
        out.append((start, rest, min(s for s in sizes if s >= rest)))
    return out


@dataclass
class _Graph:
    graph: Any  # torch.cuda.CUDAGraph
    pixels: Any  # uint8 [B, S, S, 3] on the device: the graph reads it
    embeddings: Any  # float32 [B, D] on the device: the graph writes it


class CudaRunner:
    """`run(uint8 [N, S, S, 3] numpy or device tensor) -> float32 [N, D] numpy` for a module
    that takes uint8 NHWC pixels; one runner per engine, used by one thread at a time."""

    def __init__(
        self,
        torch: Any,
        module: Any,
        *,
        image_size: int,
        embed_dim: int,
        device: str,
        graphs: bool = True,
        sizes: tuple[int, ...] = GRAPH_BATCHES,
    ) -> None:
        self._torch = torch
        self._module = module
        self.device = torch.device(device)
        self.sizes = sizes
        self.graphs_enabled = graphs
        self.embed_dim = embed_dim
        s, top = image_size, max(sizes)
        self._compute = torch.cuda.Stream(self.device)
        self._copy = torch.cuda.Stream(self.device)
        # two pinned host slots and two device slots: chunk k+1 is staged while chunk k runs
        self._host_in = [torch.empty((top, s, s, 3), dtype=torch.uint8, pin_memory=True)
                         for _ in range(2)]  # fmt: skip
        self._dev_in = [torch.empty((top, s, s, 3), dtype=torch.uint8, device=self.device)
                        for _ in range(2)]  # fmt: skip
        self._copied = [torch.cuda.Event() for _ in range(2)]  # slot's upload done
        self._consumed = [torch.cuda.Event() for _ in range(2)]  # compute done reading the slot
        self._host_out = torch.empty((top, embed_dim), dtype=torch.float32, pin_memory=True)
        self._graphs: dict[int, _Graph] = {}

    def run(self, images: Any) -> np.ndarray:
        torch = self._torch
        n = len(images)
        on_device = isinstance(images, torch.Tensor) and images.device.type == "cuda"
        if n > self._host_out.shape[0]:
            self._host_out = torch.empty((n, self.embed_dim), dtype=torch.float32, pin_memory=True)
        out = self._host_out[:n]
        chunks = plan(n, self.sizes)
        with torch.inference_mode():
            staged = None if on_device else self._stage(images, chunks[0], 0)
            for k, (start, rows, batch) in enumerate(chunks):
                x = images[start : start + rows] if on_device else staged
                with torch.cuda.stream(self._compute):
                    if not on_device:
                        self._compute.wait_event(self._copied[k % 2])
                    y = self._forward(x, rows, batch)  # [rows, D] float32 on the device
                    if not on_device:
                        self._consumed[k % 2].record(self._compute)
                    out[start : start + rows].copy_(y, non_blocking=True)
                if not on_device and k + 1 < len(chunks):  # staged while chunk k computes
                    staged = self._stage(images, chunks[k + 1], (k + 1) % 2)
            self._compute.synchronize()
        result: np.ndarray = out.numpy().copy()
        return result

    def _stage(self, images: Any, chunk: tuple[int, int, int], slot: int) -> Any:
        """Copy a chunk host → pinned slot → device slot (on the copy stream); its device rows."""
        torch = self._torch
        start, rows, _ = chunk
        self._consumed[slot].synchronize()  # the compute stream has finished with this slot
        host = self._host_in[slot][:rows]
        src = images[start : start + rows]
        host.copy_(src if isinstance(src, torch.Tensor) else torch.from_numpy(src))
        dev = self._dev_in[slot][:rows]
        with torch.cuda.stream(self._copy):
            dev.copy_(host, non_blocking=True)
            self._copied[slot].record(self._copy)
        return dev

    def _forward(self, x: Any, rows: int, batch: int) -> Any:
        """On the compute stream: the graph of `batch` (captured now if new), else eager."""
        graph = self._graph(batch) if self.graphs_enabled else None
        if graph is None:
            return self._module(x).float()
        graph.pixels[:rows].copy_(x)
        graph.graph.replay()
        return graph.embeddings[:rows]

    def _graph(self, batch: int) -> _Graph | None:
        if batch in self._graphs:
            return self._graphs[batch]
        torch = self._torch
        try:
            pixels = torch.zeros((batch, *self._dev_in[0].shape[1:]), dtype=torch.uint8,
                                 device=self.device)  # fmt: skip
            for _ in range(2):  # warm-up on the capture stream (kernel choice, workspaces)
                self._module(pixels)
            self._compute.synchronize()
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, stream=self._compute):
                embeddings = self._module(pixels).float()
        except Exception as e:  # capture is best effort: eager runs the same maths
            log.warning("CUDA graph capture failed at batch %d, running eagerly: %s", batch, e)
            self.graphs_enabled = False
            return None
        self._graphs[batch] = g = _Graph(graph, pixels, embeddings)
        return g
