"""GitHub Actions: actionlint, with shellcheck on every `run:` script."""

from __future__ import annotations

from pathlib import Path

from infra.validate.tools import run, tool


def check(root: Path) -> list[str]:
    files = sorted((root / ".github" / "workflows").glob("*.y*ml"))
    if not files:
        return ["no workflows in .github/workflows"]
    code, out = run(
        [tool("actionlint"), "-no-color", "-shellcheck", tool("shellcheck"), *map(str, files)],
        cwd=root,
    )
    return [] if code == 0 else [f"actionlint: {out}"]
