# syntax=docker/dockerfile:1.7
# harclip inference worker for NVIDIA GPUs: ONNX Runtime GPU (CUDA and TensorRT providers) and
# TensorRT on the CUDA runtime + cuDNN base. Build from the repository root:
#   docker build -f infra/docker/worker-gpu.Dockerfile -t ghcr.io/harclip/harclip-worker-gpu:$(git describe --tags --always) .
# Python 3.11 is uv's standalone build (the CUDA base is Ubuntu 24.04, whose Python is 3.12).
# Needs the NVIDIA container toolkit on the node (`nvidia.com/gpu` resources on Kubernetes).
ARG CUDA_IMAGE=nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04

FROM ghcr.io/astral-sh/uv:0.9.5 AS uv

FROM ${CUDA_IMAGE} AS build
COPY --from=uv /uv /usr/local/bin/uv
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PYTHON_INSTALL_DIR=/opt/python
WORKDIR /src
COPY pyproject.toml requirements.lock README.md ./
# The lock pins the CPU onnxruntime 1.32.0; onnxruntime-gpu (same version) provides the same
# module, so the CPU wheel is replaced by the GPU one, with TensorRT and the CUDA bindings of
# the `gpu` extra.
RUN --mount=type=cache,target=/root/.cache/uv \
    uv python install 3.11.14 && \
    uv venv --python 3.11.14 /opt/venv && \
    uv pip install --python /opt/venv/bin/python --constraint requirements.lock -r pyproject.toml && \
    uv pip uninstall --python /opt/venv/bin/python onnxruntime && \
    uv pip install --python /opt/venv/bin/python \
        "onnxruntime-gpu==1.32.0" "tensorrt-cu12==11.4.0.106" "cuda-python~=12.9"
COPY harclip ./harclip
RUN uv pip install --python /opt/venv/bin/python --no-deps .

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
    HARCLIP_MODEL__PROVIDERS='["TensorrtExecutionProvider","CUDAExecutionProvider","CPUExecutionProvider"]'
USER 10001:10001
EXPOSE 9300
HEALTHCHECK --interval=15s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9300/health', timeout=4)"]
CMD ["python", "-m", "consumers"]
