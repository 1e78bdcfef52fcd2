"""The Python examples in README.md run as written and show what their comments say."""

from __future__ import annotations

import ast
import contextlib
import io
import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)


def _run(block: str) -> tuple[dict[str, object], str]:
    """Execute one example: (its namespace, what it printed)."""
    namespace: dict[str, object] = {}
    with contextlib.redirect_stdout(io.StringIO()) as out:
        exec(compile(block, str(README), "exec"), namespace)
    return namespace, out.getvalue()


def _bound_names(block: str) -> set[str]:
    """The names an example binds at its top level (imports, definitions, assignments)."""
    names: set[str] = set()
    for node in ast.parse(block).body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            names |= {(alias.asname or alias.name).split(".")[0] for alias in node.names}
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
    return names


def test_readme_has_python_examples() -> None:
    assert BLOCKS


def test_readme_python_examples_run() -> None:
    for block in BLOCKS:
        namespace, printed = _run(block)
        bound = _bound_names(block)
        assert bound, f"the example binds nothing:\n{block}"
        missing = bound - set(namespace)
        assert not missing, f"the example stopped before binding {sorted(missing)}:\n{block}"
        assert printed.strip(), f"the example ran but showed nothing:\n{block}"


def test_readme_plug_in_example_inserts_the_dams_it_prints() -> None:
    block = next(b for b in BLOCKS if "insert_dam(" in b)
    namespace, printed = _run(block)
    dams = namespace["model"].dams  # type: ignore[attr-defined]
    assert list(dams) == ["layer1", "layer2"]
    assert [dam.num_frames for dam in dams.values()] == [8, 4]  # "T = 8 and 4"
    assert printed.strip() == str({name: dam.extra_repr() for name, dam in dams.items()})
