"""The Python examples in README.md run as written and show what their comments say."""

from __future__ import annotations

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


def test_readme_has_python_examples() -> None:
    assert BLOCKS


def test_readme_python_examples_run() -> None:
    for block in BLOCKS:
        namespace, printed = _run(block)
        assert set(namespace) - {"__builtins__"}, f"the example binds nothing:\n{block}"
        assert printed.strip(), f"the example ran but showed nothing:\n{block}"


def test_readme_plug_in_example_inserts_the_dams_it_prints() -> None:
    block = next(b for b in BLOCKS if "insert_dam(" in b)
    namespace, printed = _run(block)
    dams = namespace["model"].dams  # type: ignore[attr-defined]
    assert list(dams) == ["layer1", "layer2"]
    assert [dam.num_frames for dam in dams.values()] == [8, 4]  # "T = 8 and 4"
    assert printed.strip() == str({name: dam.extra_repr() for name, dam in dams.items()})
