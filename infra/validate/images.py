"""What building and running the images would do, beyond hadolint's style rules: every package
an image installs comes from a lock with hashes (`uv pip compile --generate-hashes`, which only
succeeds for versions that exist in the index) and is installed with `--require-hashes`; base
images are build arguments with a pinned default or pinned by digest; and every named volume a
compose service writes as a non-root user is created by its image with that owner (a new volume
starts as a copy of the image's folder, else it is root's).
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any

import yaml

from infra.validate.compose import COMPOSE, DOCKERFILES
from infra.validate.tools import run

LOCKS = ("requirements.lock", "infra/docker/*.lock")
# `--online` (HARCLIP_VALIDATE_ONLINE=1): every pin of every lock is resolved against the index,
# for the platform its image runs on
ONLINE = "HARCLIP_VALIDATE_ONLINE"
PLATFORMS = {"infra/docker/worker-gpu.lock": "x86_64-manylinux_2_28"}
# The CUDA major version PyPI's onnxruntime-gpu wheels are built for, by release (from the
# nvidia-*-cu* packages of `onnxruntime-gpu[cuda,cudnn]==V`, resolved with uv, December 2026):
# 1.19-1.26 CUDA 12, 1.28 and later CUDA 13. The GPU image's base must be the same major.
ORT_CUDA_13_FROM = (1, 28)
GPU_DOCKERFILE = "infra/docker/worker-gpu.Dockerfile"
GPU_LOCK = "infra/docker/worker-gpu.lock"
PIN = re.compile(r"""(?<![-\w])["']?[A-Za-z0-9][\w.-]*(\[[\w,]+\])?(==|~=)[\w.*+!-]+""")


def check(root: Path) -> list[str]:
    problems: list[str] = []
    for pattern in LOCKS:
        for lock in sorted(root.glob(pattern)):
            rel = lock.relative_to(root)
            problems += [f"{rel}: {p}" for p in lock_problems(lock.read_text())]
    for f in sorted((root / DOCKERFILES).glob("*.Dockerfile")):
        rel = f.relative_to(root)
        problems += [f"{rel}: {p}" for p in dockerfile_problems(f.read_text())]
    if (root / GPU_DOCKERFILE).is_file() and (root / GPU_LOCK).is_file():
        problems += gpu_cuda_problems(
            (root / GPU_DOCKERFILE).read_text(), (root / GPU_LOCK).read_text()
        )
    if os.environ.get(ONLINE) == "1":
        problems += online_problems(root)
    compose = yaml.safe_load((root / COMPOSE).read_text())
    problems += [f"{COMPOSE}: {p}" for p in volume_owners(compose, (root / COMPOSE).parent)]
    return problems


def lock_problems(text: str) -> list[str]:
    """Every pinned requirement of a lock carries at least one `--hash`."""
    problems: list[str] = []
    entries = re.split(r"\n(?=[A-Za-z0-9])", "\n" + text)
    for entry in entries:
        head = entry.split()[0] if entry.strip() else ""
        if not head or head.startswith(("#", "-")):
            continue
        if "==" not in head:
            problems.append(f"{head}: not pinned with ==")
        elif "--hash=sha256:" not in entry:
            problems.append(f"{head}: no --hash (lock with `uv pip compile --generate-hashes`)")
    return problems


def gpu_cuda_problems(dockerfile: str, lock: str) -> list[str]:
    """The GPU image's onnxruntime-gpu was built for the CUDA major version of its base image."""
    base = next(
        (
            v
            for w, r in instructions(dockerfile)
            if w == "ARG" and r.startswith("CUDA_IMAGE=")
            for v in [r.partition("=")[2]]
        ),
        "",
    )
    cuda = re.search(r":(\d+)\.\d+", base)
    ort = re.search(r"^onnxruntime-gpu==(\d+)\.(\d+)", lock, re.MULTILINE)
    if cuda is None or ort is None:
        return [f"{GPU_DOCKERFILE}: no CUDA_IMAGE default, or {GPU_LOCK} has no onnxruntime-gpu"]
    built_for = 13 if (int(ort[1]), int(ort[2])) >= ORT_CUDA_13_FROM else 12
    if int(cuda[1]) != built_for:
        return [
            f"{GPU_LOCK}: onnxruntime-gpu {ort[1]}.{ort[2]} is built for CUDA {built_for}, "
            f"the base {base} is CUDA {cuda[1]}"
        ]
    return []


def online_problems(root: Path) -> list[str]:
    """Each lock's pins exist in the package index (`uv pip compile --no-deps` of the lock)."""
    uv = shutil.which("uv")
    if uv is None:
        return ["--online needs uv on PATH"]
    problems: list[str] = []
    for pattern in LOCKS:
        for lock in sorted(root.glob(pattern)):
            rel = str(lock.relative_to(root))
            platform = PLATFORMS.get(rel)
            args = [
                uv,
                "pip",
                "compile",
                str(lock),
                "--no-deps",
                "-q",
                "-o",
                os.devnull,
                "--python-version",
                "3.11",
                *(["--python-platform", platform] if platform else []),
            ]
            code, out = run(args)
            if code:
                problems.append(f"{rel}: a pin is not in the index: {out}")
    return problems


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    current = ""
    for line in text.splitlines():
        if line.lstrip().startswith("#"):
            continue
        current += line.rstrip("\\").rstrip() + " " if line.endswith("\\") else line
        if not line.endswith("\\"):
            if current.strip():
                word, _, rest = current.strip().partition(" ")
                out.append((word.upper(), rest.strip()))
            current = ""
    return out


def _pinned_image(ref: str) -> bool:
    if "@sha256:" in ref:
        return True
    tag = ref.rsplit("/", 1)[-1].partition(":")[2]
    return bool(tag) and tag != "latest"


def dockerfile_problems(text: str) -> list[str]:
    problems: list[str] = []
    args: dict[str, str] = {}
    stages: set[str] = set()
    for word, rest in instructions(text):
        if word == "ARG" and "=" in rest:
            name, _, default = rest.partition("=")
            args[name.strip()] = default.strip()
        elif word == "FROM":
            problems += _from(rest, args, stages)
        elif word == "RUN" and re.search(r"\bpip install\b", rest):
            problems += _install(rest)
    return problems


def _from(rest: str, args: dict[str, str], stages: set[str]) -> list[str]:
    parts = [p for p in rest.split() if not p.startswith("--")]
    image = parts[0]
    if len(parts) >= 3 and parts[1].upper() == "AS":
        stages.add(parts[2])
    if image in stages:
        return []
    m = re.fullmatch(r"\$\{?(\w+)\}?", image)
    if m:
        default = args.get(m[1])
        if default is None:
            return [f"FROM {image}: build argument {m[1]} has no default"]
        return [] if _pinned_image(default) else [f"FROM {image}: default {default} not pinned"]
    if "@sha256:" not in image:
        return [
            f"FROM {image}: pin it by digest, or make it a build argument with a pinned default"
        ]
    return []


def _install(rest: str) -> list[str]:
    """A pip / uv install from the index uses a hashed lock and --require-hashes; the local
    project goes in with --no-deps."""
    problems: list[str] = []
    for command in re.split(r"&&|;", rest):
        if not re.search(r"\bpip install\b", command):
            continue
        words = command.split()
        local = words[-1] in (".", "./") and "--no-deps" in words
        if local:
            continue
        if "--require-hashes" not in words:
            problems.append(f"installs without --require-hashes: {' '.join(words)}")
        for m in PIN.finditer(command.split("pip install", 1)[1]):
            problems.append(
                f"pins {m[0].strip(chr(34) + chr(39))} outside a hashed lock "
                '(add it to a lock: docs/deploy.md, "Images")'
            )
    return problems


# ----------------------------------------------------------------------------- compose


def _dockerfile(svc: dict[str, Any], base: Path) -> Path | None:
    build = svc.get("build")
    if not isinstance(build, dict):
        return None
    path = base / build.get("context", ".") / build.get("dockerfile", "Dockerfile")
    return path if path.is_file() else None


def _image_user(text: str) -> str:
    users = [rest for word, rest in instructions(text) if word == "USER"]
    return users[-1] if users else "0"


def _owned(text: str, path: str) -> bool:
    """The image's final stage creates `path` and gives it to its user (chown)."""
    final = text.rsplit("\nFROM ", 1)[-1]
    at = re.compile(rf"(?<![\w/]){re.escape(path)}(?![\w/])")
    return any(
        word == "RUN" and "chown" in rest and at.search(rest) for word, rest in instructions(final)
    )


def volume_owners(doc: dict[str, Any], base: Path) -> list[str]:
    """A service that writes a named volume as a non-root user needs its image to own the
    mount point, or the new volume is root's and every write fails (EACCES)."""
    problems: list[str] = []
    named = set(doc.get("volumes") or {})
    for name, svc in (doc.get("services") or {}).items():
        dockerfile = _dockerfile(svc, base)
        if dockerfile is None:
            continue
        text = dockerfile.read_text()
        user = str(svc.get("user") or _image_user(text)).split(":")[0]
        if user in ("0", "root"):
            continue
        for v in svc.get("volumes", []):
            spec = v.split(":") if isinstance(v, str) else [v.get("source", ""), v.get("target")]
            source, target = spec[0], spec[1] if len(spec) > 1 else ""
            read_only = (isinstance(v, str) and v.endswith(":ro")) or (
                isinstance(v, dict) and v.get("read_only")
            )
            if source in named and not read_only and not _owned(text, target):
                problems.append(
                    f"{name}: writes volume {source} at {target} as user {user}, "
                    f"but {dockerfile.name} does not create {target} owned by it "
                    "(a new volume is root's)"
                )
    return problems
