"""The shape of the tree, checked rather than hoped for: no source module over 400 lines, and
each deployable imports only the library (`harclip`) and itself, never another deployable."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MAX_LINES = 400
DEPLOYABLES = ("api", "consumers", "producers", "stream", "training", "ui")
SOURCES = ("harclip", *DEPLOYABLES, "bench", "scripts")


def _modules(*tops: str) -> list[Path]:
    return sorted(p for top in tops if (ROOT / top).is_dir() for p in (ROOT / top).rglob("*.py"))


def _imported(path: Path) -> set[str]:
    """The top-level packages `path` imports (absolute imports only)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


def test_no_module_over_400_lines() -> None:
    long = {
        str(p.relative_to(ROOT)): n
        for p in _modules(*SOURCES)
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert not long, f"split these modules (over {MAX_LINES} lines): {long}"


def test_the_library_imports_no_deployable() -> None:
    bad = {
        str(p.relative_to(ROOT)): sorted(_imported(p) & set(DEPLOYABLES))
        for p in _modules("harclip")
    }
    assert not {k: v for k, v in bad.items() if v}


@pytest.mark.parametrize("top", DEPLOYABLES)
def test_a_deployable_imports_no_other_deployable(top: str) -> None:
    others = set(DEPLOYABLES) - {top}
    bad = {str(p.relative_to(ROOT)): sorted(_imported(p) & others) for p in _modules(top)}
    assert not {k: v for k, v in bad.items() if v}, "shared code belongs in harclip/"
