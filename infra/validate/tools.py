"""Finding and running the external validators (built by `make tools` under .tools/)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TOOLS = REPO / ".tools"
K8S_VERSION = "1.33.0"
K8S_SCHEMAS = TOOLS / "k8s-schemas" / f"v{K8S_VERSION}-standalone-strict"


class MissingTool(Exception):
    """A validator is not installed: `make tools` builds it."""


def tool(name: str) -> str:
    """The path of a validator: .tools/bin, the tools venv, then PATH."""
    for candidate in (TOOLS / "bin" / name, TOOLS / "venv" / "bin" / name):
        if candidate.is_file():
            return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise MissingTool(f"{name} is not installed: run `make tools`")
    return found


def run(args: list[str], *, stdin: str | None = None, cwd: Path | None = None) -> tuple[int, str]:
    """Run a validator; (exit status, stdout + stderr)."""
    done = subprocess.run(
        args, input=stdin, capture_output=True, text=True, cwd=cwd, check=False, timeout=300
    )
    return done.returncode, (done.stdout + done.stderr).strip()


def version(name: str, *flag: str) -> str:
    """The first line a validator prints about its version."""
    _code, out = run([tool(name), *(flag or ("--version",))])
    return out.splitlines()[0].strip() if out else "?"
