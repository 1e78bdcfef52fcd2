"""The Python examples in README.md run as written."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)


def test_readme_has_python_examples() -> None:
    assert BLOCKS


def test_readme_python_examples_run() -> None:
    for block in BLOCKS:
        namespace: dict[str, object] = {}
        exec(compile(block, str(README), "exec"), namespace)
        assert namespace, block
