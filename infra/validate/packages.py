"""Every pinned Python package exists: each `name==version` of every lock (requirements.lock,
infra/docker/*.lock) and every pin a Dockerfile installs is checked, offline, against a list of
the package index's packages (a TSV whose first columns are `name` and a `version`; the path in
HARCLIP_PACKAGE_LIST, `make validate PACKAGE_LIST=...`): every name is listed. Such a list is a
snapshot of one day, so a pinned version newer than the one it names may well exist: versions
are not judged here; `--online` resolves the exact pins against the index (images.py), as CI
does. Without a list this check has nothing to read and passes."""

from __future__ import annotations

import os
import re
from pathlib import Path

from infra.validate.compose import DOCKERFILES
from infra.validate.images import LOCKS

LIST_ENV = "HARCLIP_PACKAGE_LIST"
LOCK_PIN = re.compile(r"^([A-Za-z0-9][\w.-]*)(?:\[[\w,]+\])?==([\w.+!-]+)", re.MULTILINE)
INSTALL_PIN = re.compile(r"""(?<![-\w/=])["']?([A-Za-z0-9][\w.-]*)(?:\[[\w,]+\])?==([\w.+!-]+)""")


def normalize(name: str) -> str:
    """PEP 503's name normalization."""
    return re.sub(r"[-_.]+", "-", name).lower()


def read_list(path: Path) -> dict[str, str]:
    """name -> newest version, from the TSV (header line first)."""
    out: dict[str, str] = {}
    with path.open(encoding="utf-8", errors="replace") as f:
        next(f, None)
        for line in f:
            parts = line.split("\t", 2)
            if len(parts) >= 2:
                out[normalize(parts[0])] = parts[1].strip()
    return out


def pins(root: Path) -> dict[str, list[tuple[str, str]]]:
    """file -> its (name, version) pins: the locks' and the Dockerfiles' `pip install`s."""
    out: dict[str, list[tuple[str, str]]] = {}
    for pattern in LOCKS:
        for lock in sorted(root.glob(pattern)):
            out[str(lock.relative_to(root))] = LOCK_PIN.findall(lock.read_text())
    for f in sorted((root / DOCKERFILES).glob("*.Dockerfile")):
        found = [
            m
            for line in f.read_text().splitlines()
            if "pip install" in line or "pip3 install" in line
            for m in INSTALL_PIN.findall(line)
        ]
        if found:
            out[str(f.relative_to(root))] = found
    return out


def problems_against(listing: dict[str, str], found: dict[str, list[tuple[str, str]]]) -> list[str]:
    problems: list[str] = []
    for where, items in found.items():
        for name, version in items:
            newest = listing.get(normalize(name))
            if newest is None:
                problems.append(f"{where}: {name}=={version}: no package {name} in the index")
    return problems


def check(root: Path) -> list[str]:
    path = os.environ.get(LIST_ENV, "")
    if not path:
        return []
    if not Path(path).is_file():
        return [f"{LIST_ENV}={path}: no such file"]
    return problems_against(read_list(Path(path)), pins(root))
