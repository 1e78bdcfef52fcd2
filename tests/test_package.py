"""The package's structure: one-way imports, the top-level export list, light plug-in imports."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import hdf_lightning
from import_utils import loaded_modules

SRC = Path(hdf_lightning.__file__).resolve().parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _package_imports(path: Path) -> set[str]:
    """Modules of this package that ``path`` imports anywhere (TYPE_CHECKING blocks excluded)."""
    tree = ast.parse(path.read_text())
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped |= {id(n) for child in node.body for n in ast.walk(child)}
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.startswith("hdf_lightning"):
                found.add(node.module)
                found |= {f"{node.module}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("hdf_lightning")}
    return found


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in SRC.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        # an import of a.b.c also executes the packages a and a.b
        imported = _package_imports(path)
        parents = {m.rsplit(".", k)[0] for m in imported for k in range(1, m.count(".") + 1)}
        edges = {m for m in imported | parents if m in modules}
        graph[name] = {e for e in edges if e != name and not name.startswith(e + ".")}
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_import_cycle_between_modules() -> None:
    graph = _graph()
    assert graph.get("hdf_lightning.cli")
    assert _cycle(graph) is None, f"import cycle: {' -> '.join(_cycle(graph) or [])}"


def test_cycle_finder_finds_a_cycle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_layers_below_lightning_do_not_import_the_upper_floor() -> None:
    graph = _graph()
    lower = ("layers", "losses", "optim", "models")
    upper = ("lit", "cli", "commands", "runners", "callbacks", "data")
    for name, edges in graph.items():
        if name.split(".")[1:2] and name.split(".")[1] in lower:
            bad = [e for e in edges if e.split(".")[1:2] and e.split(".")[1] in upper]
            assert not bad, f"{name} imports {bad}"


def test_export_lists_agree() -> None:
    source = (SRC / "__init__.py").read_text()
    tree = ast.parse(source)
    typed: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for imp in node.body:
                assert isinstance(imp, ast.ImportFrom) and imp.module
                typed |= {a.name: imp.module for a in imp.names}
    assert typed == hdf_lightning._EXPORTS
    assert sorted(hdf_lightning.__all__) == sorted(["__version__", *hdf_lightning._EXPORTS])
    for name, module in hdf_lightning._EXPORTS.items():
        assert getattr(hdf_lightning, name) is getattr(importlib.import_module(module), name), name


def test_plug_in_import_loads_neither_lightning_nor_data() -> None:
    unwanted = ("pytorch_lightning", "lightning", "hdf_lightning.data", "hdf_lightning.lit")
    loaded, _ = loaded_modules(
        "from hdf_lightning import DAM, DSM, SAM, HDFNet, insert_dam", (*unwanted, "torchmetrics")
    )
    assert loaded == []
