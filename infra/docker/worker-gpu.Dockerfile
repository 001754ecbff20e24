# syntax=docker/dockerfile:1.7
# harclip inference worker for NVIDIA GPUs: ONNX Runtime's CUDA 12 build (CUDA execution provider)
# on the CUDA 12.8 runtime + cuDNN 9 base. Build from the repository root:
#   docker build -f infra/docker/worker-gpu.Dockerfile -t ghcr.io/harclip/harclip-worker-gpu:$(git describe --tags --always) .
# Python 3.11 is uv's standalone build (the CUDA base is Ubuntu 24.04, whose Python is 3.12).
# Needs the NVIDIA container toolkit on the node (`nvidia.com/gpu` resources on Kubernetes).
# Base images are build arguments: pin them by digest for a release build
# (--build-arg CUDA_IMAGE=nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04@sha256:<digest>).
# The CUDA major version must be the one onnxruntime-gpu was built for (worker-gpu.in).
ARG CUDA_IMAGE=nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04
ARG UV_IMAGE=ghcr.io/astral-sh/uv:0.9.5

FROM ${UV_IMAGE} AS uv

FROM ${CUDA_IMAGE} AS build
COPY --from=uv /uv /usr/local/bin/uv
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PYTHON_INSTALL_DIR=/opt/python
WORKDIR /src
# infra/docker/worker-gpu.lock: harclip's dependencies with onnxruntime-gpu in place of the CPU
# onnxruntime (the same module), every package with its hashes
COPY pyproject.toml README.md infra/docker/worker-gpu.lock ./
RUN --mount=type=cache,target=/root/.cache/uv \
    uv python install 3.11.14 && \
    uv venv --python 3.11.14 /opt/venv && \
    uv pip install --python /opt/venv/bin/python --require-hashes --no-deps \
        -r worker-gpu.lock
COPY harclip ./harclip
# then the smoke test: the GPU build imports and offers CUDA (listing needs no GPU)
RUN uv pip install --python /opt/venv/bin/python --no-deps . && \
    /opt/venv/bin/python -c "import onnxruntime as ort; p = ort.get_available_providers(); \
print('onnxruntime', ort.__version__, p); assert 'CUDAExecutionProvider' in p, p"

FROM ${CUDA_IMAGE}
RUN groupadd --system --gid 10001 harclip && \
    useradd --system --uid 10001 --gid harclip --home-dir /app --no-create-home harclip
COPY --from=build /opt/python /opt/python
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY consumers ./consumers
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HARCLIP_LOG_FORMAT=ecs \
    HARCLIP_METRICS__HOST=0.0.0.0 \
    HARCLIP_MODEL__PROVIDERS='["CUDAExecutionProvider","CPUExecutionProvider"]'
USER 10001:10001
EXPOSE 9300
HEALTHCHECK --interval=15s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9300/health', timeout=4)"]
CMD ["python", "-m", "consumers"]
