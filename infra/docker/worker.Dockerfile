# syntax=docker/dockerfile:1.7
# harclip inference worker (CPU: ONNX Runtime) image. Build from the repository root:
#   docker build -f infra/docker/worker.Dockerfile -t ghcr.io/harclip/harclip-worker:$(git describe --tags --always) .
# Two stages: dependencies pinned by requirements.lock (as constraints, so only this role's extras
# are installed) into /opt/venv, then a slim runtime with that venv, the code and a non-root user.
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
# dependencies first: this layer is rebuilt only when the lock or pyproject changes
COPY pyproject.toml requirements.lock README.md ./
RUN --mount=type=cache,target=/root/.cache/uv \
    uv venv --python /usr/local/bin/python /opt/venv && \
    uv pip install --python /opt/venv/bin/python --require-hashes \
        --constraint requirements.lock \
        -r pyproject.toml
# then the library itself (no dependencies left to resolve)
COPY harclip ./harclip
RUN uv pip install --python /opt/venv/bin/python --no-deps .

FROM ${PYTHON_IMAGE}
RUN groupadd --system --gid 10001 harclip && \
    useradd --system --uid 10001 --gid harclip --home-dir /app --no-create-home harclip
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY consumers ./consumers
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HARCLIP_LOG_FORMAT=ecs \
    HARCLIP_METRICS__HOST=0.0.0.0
USER 10001:10001
EXPOSE 9300
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9300/health', timeout=4)"]
CMD ["python", "-m", "consumers"]
