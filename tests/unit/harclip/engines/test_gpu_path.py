"""The GPU hot path: batched JPEG decode + resize/crop on a torch device with a CPU fallback per
frame, chunk planning for CUDA graphs, and the torch engines' CUDA runner.

The decoder runs here on device="cpu" (torchvision's libjpeg), the same code as on CUDA; the
tests marked `gpu` need a CUDA device and skip only where there is none.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import torch

from harclip.config import ModelSettings
from harclip.engines import create_engine
from harclip.engines._cuda import GRAPH_BATCHES, plan
from harclip.engines.gpu_decode import TorchDecoder, decoder_for, resized_shape, stack_pixels
from harclip.errors import DecodeError, ModelError
from harclip.model.bundle import Bundle
from harclip.model.preprocess import decode_image, preprocess_batch

S = 224
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.fixture(scope="module")
def photos(sample_photos: list[Path]) -> list[bytes]:
    return [p.read_bytes() for p in sample_photos[::20]]  # 32 photos, every class


def test_plan_pads_up_to_a_captured_size_and_chunks_big_batches() -> None:
    assert plan(1) == [(0, 1, 1)]
    assert plan(5) == [(0, 5, 8)]
    assert plan(32) == [(0, 32, 32)]
    assert plan(200) == [(0, 128, 128), (128, 72, 128)]
    assert plan(256) == [(0, 128, 128), (128, 128, 128)]
    assert plan(0) == []
    for n in range(1, 300):
        chunks = plan(n)
        assert sum(rows for _, rows, _ in chunks) == n
        assert all(rows <= batch and batch in GRAPH_BATCHES for _, rows, batch in chunks)


def test_resized_shape_matches_clip_image_processor() -> None:
    assert resized_shape(480, 640, 224) == (224, 298)
    assert resized_shape(640, 480, 224) == (298, 224)
    assert resized_shape(100, 100, 224) == (224, 224)


def test_decoder_matches_the_cpu_preprocessing(photos: list[bytes]) -> None:
    decoder = TorchDecoder(S, max_pixels=10**8, device="cpu")
    out, errors = decoder.decode(photos)
    assert errors == [None] * len(photos) and decoder.fallbacks == 0
    assert out.dtype == torch.uint8 and tuple(out.shape) == (len(photos), S, S, 3)
    ref, _ = preprocess_batch(photos, S, max_pixels=10**8)
    diff = np.abs(out.numpy().astype(np.int16) - ref.astype(np.int16))
    # antialiased bicubic (as PIL / CLIPImageProcessor) against OpenCV's filters: close
    assert float(diff.mean()) <= 3.0, float(diff.mean())


def test_frames_the_jpeg_decoder_refuses_fall_back_to_the_cpu_alone(
    photos: list[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    png = cv2.imencode(".png", np.full((60, 90, 3), 200, np.uint8))[1].tobytes()
    truncated = photos[0][: len(photos[0]) // 2]
    inputs = [photos[0], png, b"not an image at all", truncated, photos[1], photos[2]]
    decoder = TorchDecoder(S, max_pixels=10**8, device="cpu")
    real = decoder._tvio.decode_jpeg
    refused = photos[2]

    def flaky(data: Any, **kw: Any) -> Any:  # nvJPEG refusing one frame of a batch
        frames = data if isinstance(data, list) else [data]
        if any(bytes(f.numpy()) == refused for f in frames):
            raise RuntimeError("nvjpeg: unsupported")
        return real(data, **kw)

    monkeypatch.setattr(decoder._tvio, "decode_jpeg", flaky)
    out, errors = decoder.decode(inputs)
    assert [e is None for e in errors] == [True, True, False, False, True, True]
    assert isinstance(errors[2], DecodeError) and isinstance(errors[3], DecodeError)
    assert decoder.fallbacks == 2  # the PNG and the refused JPEG, each on its own
    np.testing.assert_array_equal(out[1].numpy(), decode_image(png, S, max_pixels=10**8))
    np.testing.assert_array_equal(out[5].numpy(), decode_image(refused, S, max_pixels=10**8))
    assert int(out[2].sum()) == 0 and int(out[3].sum()) == 0  # failed rows are zeros


def test_stack_pixels_keeps_numpy_and_tensors_apart() -> None:
    rows = [np.zeros((4, 4, 3), np.uint8)] * 3
    assert isinstance(stack_pixels(rows), np.ndarray) and stack_pixels(rows).shape == (3, 4, 4, 3)
    t = stack_pixels([torch.zeros((4, 4, 3), dtype=torch.uint8)] * 2)
    assert isinstance(t, torch.Tensor) and tuple(t.shape) == (2, 4, 4, 3)


def test_gpu_decoding_only_feeds_engines_on_cuda(tiny_bundle: Path) -> None:
    onnx = create_engine(Bundle.load(tiny_bundle), "onnx", ModelSettings())
    try:
        assert decoder_for(onnx, S, max_pixels=10**8, enabled=True) is None
    finally:
        onnx.close()

    class OnCuda:
        device, takes_tensors = "cuda", True

    assert decoder_for(OnCuda(), S, max_pixels=10**8, enabled=False) is None
    made = decoder_for(OnCuda(), S, max_pixels=10**8, enabled=True)
    assert (made is not None) == torch.cuda.is_available()  # no CUDA: decode on the CPU


def test_torch_engine_on_cpu_refuses_tensors(tiny_bundle: Path) -> None:
    engine = create_engine(Bundle.load(tiny_bundle), "torch", ModelSettings(device="cpu"))
    try:
        assert not engine.takes_tensors  # type: ignore[attr-defined]
        with pytest.raises(ModelError, match="CUDA only"):
            engine.embed(torch.zeros((1, S, S, 3), dtype=torch.uint8))
    finally:
        engine.close()


@pytest.mark.gpu
@needs_cuda
def test_cuda_graphs_match_eager_at_every_planned_size(tiny_bundle: Path) -> None:
    from harclip.engines._cuda import CudaRunner

    bundle = Bundle.load(tiny_bundle)
    engine: Any = create_engine(bundle, "torch", ModelSettings(device="cuda", torch_dtype="fp16"))
    images = np.random.default_rng(0).integers(0, 256, (140, S, S, 3), dtype=np.uint8)
    eager = CudaRunner(torch, engine._module, image_size=S, embed_dim=engine.embed_dim,
                       device="cuda", graphs=False)  # fmt: skip
    for n in (1, 5, 32, 140):  # padded, exact, chunked
        out = engine.embed(images[:n])
        ref = eager.run(images[:n])
        assert out.shape == (n, engine.embed_dim)
        assert float(np.abs(out - ref).max()) <= 2e-3
    assert engine._runner.graphs_enabled and set(engine._runner._graphs) >= {1, 8, 32, 128}
    device_in = torch.from_numpy(images[:32]).cuda()
    assert float(np.abs(engine.embed(device_in) - engine.embed(images[:32])).max()) <= 1e-6
    engine.close()


@pytest.mark.gpu
@needs_cuda
def test_nvjpeg_decoder_matches_the_cpu_one(photos: list[bytes]) -> None:
    gpu, errors = TorchDecoder(S, max_pixels=10**8, device="cuda").decode(photos)
    cpu, _ = TorchDecoder(S, max_pixels=10**8, device="cpu").decode(photos)
    assert errors == [None] * len(photos) and gpu.is_cuda
    diff = (gpu.cpu().to(torch.int16) - cpu.to(torch.int16)).abs()
    assert float(diff.float().mean()) <= 2.0  # nvJPEG's IDCT and colour conversion differ a bit


class _FakeCuda:
    """Enough of `torch.cuda` to drive CudaRunner's chunking, slots and copies on the CPU."""

    class Stream:
        def __init__(self, device: object = None) -> None:
            pass

        def synchronize(self) -> None:
            pass

        def wait_event(self, event: object) -> None:
            pass

    class Event:
        def record(self, stream: object = None) -> None:
            pass

        def synchronize(self) -> None:
            pass

    class CUDAGraph:
        pass

    @staticmethod
    def stream(stream: object) -> Any:
        import contextlib

        return contextlib.nullcontext()

    @staticmethod
    def graph(graph: object, stream: object = None) -> Any:
        raise RuntimeError("operation not permitted when stream is capturing")


class _FakeTorch:
    """torch, with CUDA streams, events and pinned memory as CPU no-ops."""

    cuda = _FakeCuda

    def __getattr__(self, name: str) -> Any:
        return getattr(torch, name)

    def device(self, name: str) -> Any:
        return torch.device("cpu")

    def empty(self, *shape: Any, pin_memory: bool = False, **kw: Any) -> Any:
        return torch.empty(*shape, **kw)


class _MeanColour(torch.nn.Module):
    """uint8 [N, S, S, 3] -> L2-normalised [N, 4]: rows independent, as the image towers."""

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        m = pixels.float().mean(dim=(1, 2))  # [N, 3]
        y = torch.cat([m, m[:, :1] * 0.5 + 1], dim=1)
        return torch.nn.functional.normalize(y, dim=-1)


@pytest.mark.parametrize("n", [1, 5, 16, 40])
def test_cuda_runner_chunks_stages_and_falls_back_to_eager(
    n: int, caplog: pytest.LogCaptureFixture
) -> None:
    """The runner's orchestration (chunks, double-buffered slots, output assembly) with CUDA
    replaced by no-ops; graph capture fails here, so it must warn once and run eagerly."""
    from harclip.engines._cuda import CudaRunner

    module = _MeanColour()
    runner = CudaRunner(_FakeTorch(), module, image_size=8, embed_dim=4, device="cuda",
                        sizes=(1, 8, 16))  # fmt: skip
    images = np.random.default_rng(n).integers(0, 256, (n, 8, 8, 3), dtype=np.uint8)
    with caplog.at_level("WARNING", logger="harclip.engines._cuda"):
        out = runner.run(images)
        again = runner.run(images[::-1].copy())
    expected = module(torch.from_numpy(images)).numpy()
    np.testing.assert_allclose(out, expected, atol=1e-6)
    np.testing.assert_allclose(again, expected[::-1], atol=1e-6)
    assert not runner.graphs_enabled
    assert sum("running eagerly" in r.message for r in caplog.records) == 1
