# syntax=docker/dockerfile:1.7
# harclip training image (`python -m training ...`, `torchrun -m training finetune`): torch,
# transformers, MLflow, W&B, DVC. PyTorch's wheels bring their own CUDA libraries, so the same
# image trains on CPU or on NVIDIA GPUs (Kubeflow PyTorchJob, k8s/training). Build from the root:
#   docker build -f infra/docker/train.Dockerfile -t ghcr.io/harclip/harclip-train:$(git describe --tags --always) .
# Base images are build arguments (`make images` builds local ones from Debian packages:
# docs/deploy.md, "Containers"); pin them by digest for a release build
# (--build-arg PYTHON_IMAGE=python:3.11.14-slim-bookworm@sha256:<digest>, the digest from
# `docker buildx imagetools inspect`); docs/deploy.md, "Images".
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm
ARG UV_IMAGE=ghcr.io/astral-sh/uv:0.9.5

FROM ${UV_IMAGE} AS uv

FROM ${PYTHON_IMAGE} AS build
COPY --from=uv /uv /usr/local/bin/uv
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=never
# uv's cache: the cache mount below, or (`make images`) the host's uv cache mounted with
# `podman build --volume` and named here, so a rebuild downloads nothing it already has
ARG UV_CACHE_DIR=/root/.cache/uv
WORKDIR /src
COPY pyproject.toml requirements.lock README.md ./
RUN --mount=type=cache,target=/root/.cache/uv \
    uv venv --python /usr/local/bin/python /opt/venv && \
    uv pip install --python /opt/venv/bin/python --require-hashes \
        --constraint requirements.lock \
        -r pyproject.toml --extra train
COPY harclip ./harclip
RUN uv pip install --python /opt/venv/bin/python --no-deps .

FROM ${PYTHON_IMAGE}
RUN groupadd --system --gid 10001 harclip && \
    useradd --system --uid 10001 --gid harclip --home-dir /home/harclip --create-home harclip && \
    mkdir -p /models && chown harclip:harclip /models
# /models belongs to the user: a new volume mounted there (compose's `models`, written by
# model-init as 10001) starts as a copy of this folder, owner included
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY training ./training
COPY params.yaml dvc.yaml ./
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HARCLIP_LOG_FORMAT=ecs
USER 10001:10001
# a job, not a service: no port; the health check says the environment imports
HEALTHCHECK --interval=60s --timeout=30s --retries=1 CMD ["python", "-c", "import torch, training"]
CMD ["python", "-m", "training", "--help"]
