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


# --- The structure issue's limits: each one a test, so the shape stays once reached. ---

LONG_FUNCTION = 80  # lines, outside tests
MANY_ATTRIBUTES = 15  # per class, other than settings, metrics and wire (pydantic) models
_DATA_BASES = {"BaseModel", "BaseSettings", "_Section", "WireModel", "Message"}
_DATA_SUFFIXES = ("Settings", "Metrics", "Config", "Manifest")
CODE = (*SOURCES, "infra")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _import_graph() -> dict[str, set[str]]:
    """Module -> the project modules it imports anywhere (top level, functions, TYPE_CHECKING)."""
    paths = {_module_name(p): p for p in _modules(*CODE)}
    graph: dict[str, set[str]] = {}
    for name, path in paths.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found |= {a.name for a in node.names if a.name in paths}
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    module = ".".join([*base, *([node.module] if node.module else [])])
                else:
                    module = node.module or ""
                for a in node.names:
                    if f"{module}.{a.name}" in paths:
                        found.add(f"{module}.{a.name}")
                    elif module in paths:
                        found.add(module)
        graph[name] = found - {name}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_import_cycle_counting_lazy_imports() -> None:
    assert not _cycles(_import_graph()), "import cycles (lazy and TYPE_CHECKING imports count)"


def test_the_cycle_finder_finds_cycles() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert _cycles(graph) == [["a", "b", "c"]]


def test_no_source_function_over_80_lines() -> None:
    long = [
        f"{p.relative_to(ROOT)}:{n.lineno} {n.name} ({n.end_lineno - n.lineno + 1} lines)"
        for p in _modules(*CODE)
        for n in ast.walk(ast.parse(p.read_text(), str(p)))
        if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)
        and n.end_lineno is not None
        and n.end_lineno - n.lineno + 1 > LONG_FUNCTION
    ]
    assert not long, "split these functions where their steps have names"


def _attributes(cls: ast.ClassDef) -> set[str]:
    names = {b.target.id for b in cls.body if isinstance(b, ast.AnnAssign)
             and isinstance(b.target, ast.Name)}  # fmt: skip
    for node in ast.walk(cls):
        targets = node.targets if isinstance(node, ast.Assign) else (
            [node.target] if isinstance(node, ast.AnnAssign | ast.AugAssign) else [])  # fmt: skip
        for target in targets:
            names |= {e.attr for e in ast.walk(target) if isinstance(e, ast.Attribute)
                      and isinstance(e.value, ast.Name) and e.value.id == "self"}  # fmt: skip
    return names


def test_no_class_with_more_than_15_attributes() -> None:
    big = {}
    for p in _modules(*CODE):
        for n in ast.walk(ast.parse(p.read_text(), str(p))):
            if not isinstance(n, ast.ClassDef) or n.name.endswith(_DATA_SUFFIXES):
                continue
            if {ast.unparse(b).rpartition(".")[2] for b in n.bases} & _DATA_BASES:
                continue
            if len(attrs := _attributes(n)) > MANY_ATTRIBUTES:
                big[f"{p.relative_to(ROOT)}::{n.name}"] = len(attrs)
    assert not big, "split these classes where their parts have names"


def test_the_events_app_is_a_registration_table() -> None:
    assert len((ROOT / "stream" / "application.py").read_text().splitlines()) < 150


def test_private_names_of_other_objects_only_in_the_checkpoint() -> None:
    """Faust's private names (and any other object's) are touched in stream/checkpoint.py only."""
    reach = {
        f"{p.relative_to(ROOT)}:{n.lineno} .{n.attr}"
        for p in _modules("stream")
        if p.name != "checkpoint.py"
        for n in ast.walk(ast.parse(p.read_text(), str(p)))
        if isinstance(n, ast.Attribute) and n.attr.startswith("_") and not n.attr.startswith("__")
        and not (isinstance(n.value, ast.Name) and n.value.id in ("self", "cls"))
    }  # fmt: skip
    assert not reach


def test_free_port_is_defined_once() -> None:
    defined = [
        str(p.relative_to(ROOT))
        for p in _modules(*CODE, "tests")
        for n in ast.walk(ast.parse(p.read_text(), str(p)))
        if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef) and n.name == "free_port"
    ]
    assert len(defined) <= 1, defined


def test_child_processes_start_in_one_place() -> None:
    """Tests and benches start services through the one harness (tests/support, bench's own
    runner); a test that checks a command's exit status may still use `subprocess.run`."""
    allowed = ("tests/support/", "harclip/services/", "tests/unit/harclip/services/")
    spawns = sorted(
        str(p.relative_to(ROOT))
        for p in _modules("tests", "bench", "scripts")
        if not str(p.relative_to(ROOT)).startswith(allowed)
        and p != Path(__file__).resolve()  # this check names what it looks for
        and ("Popen(" in (text := p.read_text()) or "create_subprocess_exec(" in text)
    )
    assert not spawns


def test_no_sys_path_edits_in_bench() -> None:
    edits = [str(p.relative_to(ROOT)) for p in _modules("bench") if "sys.path" in p.read_text()]
    assert not edits, "bench is a package: python -m bench.<name>"


def test_no_conftest_is_imported_as_a_library() -> None:
    """Conftests only declare fixtures; what tests share lives in tests/support."""
    importers = sorted(
        str(p.relative_to(ROOT))
        for p in _modules("tests")
        if any(m.endswith("conftest") for m in _imported_modules(p))
    )
    assert not importers


def _imported_modules(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found
