"""The compose file and the Dockerfiles: docker-compose.yml against the Compose Specification's
JSON schema (vendored in infra/schemas/) plus what the schema cannot see (services named in
depends_on exist, named volumes are declared, bind-mounted files and Dockerfiles exist, no host
port is published twice); hadolint on every Dockerfile under infra/docker/."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from infra.validate.tools import run, tool

COMPOSE = Path("infra/docker-compose.yml")
SCHEMA = Path("infra/schemas/compose-spec.json")
DOCKERFILES = Path("infra/docker")


def check_compose(root: Path) -> list[str]:
    compose_file = root / COMPOSE
    try:
        doc = yaml.safe_load(compose_file.read_text())
    except yaml.YAMLError as e:
        return [f"{COMPOSE}: not YAML: {e}"]
    schema = json.loads((root / SCHEMA).read_text())
    validator = jsonschema.Draft7Validator(schema)
    problems = [
        f"{COMPOSE}: {'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}"
        for e in sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.path)))
    ]
    if problems:
        return problems
    return [f"{COMPOSE}: {p}" for p in references(doc, compose_file.parent)]


def references(doc: dict[str, Any], base: Path) -> list[str]:
    """What the schema cannot check (pure but for file existence under `base`)."""
    problems: list[str] = []
    services: dict[str, Any] = doc.get("services", {})
    volumes = set(doc.get("volumes") or {})
    published: dict[str, str] = {}
    for name, svc in services.items():
        deps = svc.get("depends_on", [])
        for dep in deps if isinstance(deps, list) else deps.keys():
            if dep not in services:
                problems.append(f"{name}: depends_on {dep!r}, which is not a service")
        for v in svc.get("volumes", []):
            source = v.split(":")[0] if isinstance(v, str) else v.get("source", "")
            if source.startswith((".", "/")):
                if source.startswith(".") and not (base / source).exists():
                    problems.append(f"{name}: mounts {source}, which does not exist")
            elif source and source not in volumes:
                problems.append(f"{name}: volume {source!r} is not declared under volumes")
        build = svc.get("build")
        if isinstance(build, dict):
            dockerfile = base / build.get("context", ".") / build.get("dockerfile", "Dockerfile")
            if not dockerfile.is_file():
                problems.append(f"{name}: Dockerfile {dockerfile} does not exist")
        for port in svc.get("ports", []):
            host = str(port).rsplit(":", 1)[0] if ":" in str(port) else str(port)
            if host in published:
                problems.append(f"{name}: host port {host} is also published by {published[host]}")
            published[host] = name
    return problems


def check_dockerfiles(root: Path) -> list[str]:
    files = sorted((root / DOCKERFILES).glob("*.Dockerfile"))
    if not files:
        return [f"no Dockerfiles in {DOCKERFILES}"]
    config = root / DOCKERFILES / ".hadolint.yaml"
    code, out = run([tool("hadolint"), "--no-color", "--config", str(config), *map(str, files)])
    return [] if code == 0 else [f"hadolint: {out}"]
