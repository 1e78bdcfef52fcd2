"""The notebooks under notebooks/ execute from top to bottom without errors.

A notebook's cell tagged ``parameters`` holds its settings; the tests run each notebook with the
small settings of ``SMALL`` (a cell inserted after that one, as papermill does), so the suite stays
within minutes on a CPU. A failing cell fails the test. The outputs committed with a notebook must
come from one top-to-bottom run (or be absent).
"""

from __future__ import annotations

import ast
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))

SMALL: dict[str, dict[str, object]] = {
    "02_drop_in_dam_dsm.ipynb": {
        "SIZE": 16,
        "FRAMES": 4,
        "SUBJECTS": 5,
        "CLIPS_PER_SUBJECT": 7,
        "EPOCHS": 1,
        "BATCH": 28,  # one step per model
    },
    "03_inside_dam.ipynb": {
        "SIZE": 32,
        "SUBJECTS": 5,
        "CLIPS_PER_SUBJECT": 7,
        "EPOCHS": 1,
        "NET": {"width_factor": 0.5, "depth_factor": 0.3, "head_dim": 32},
    },
}

# what each notebook must print or show when it ran through
EXPECTED: dict[str, list[str]] = {
    "01_quickstart.ipynb": ["shape kept: True", "g = "],
    "02_drop_in_dam_dsm.ipynb": [
        "r3d_18 + CE (unmodified)",
        "r3d_18 + DAM + DSM + SAM",
        "lambda_CE = 5.000, lambda_SC = 0.0500",  # DSM without SAM: g stays 1
        "after layer1: DAM(channels=64, num_frames=4)",
        "after layer2: DAM(channels=128, num_frames=2)",
    ],
    "03_inside_dam.ipynb": ["temporal weights of"],
}


def _cell_tagged(nb: nbformat.NotebookNode, tag: str) -> int:
    indices = [i for i, c in enumerate(nb.cells) if tag in c.get("metadata", {}).get("tags", [])]
    assert len(indices) == 1, f"expected one cell tagged {tag!r}, found {len(indices)}"
    return indices[0]


def _with_parameters(nb: nbformat.NotebookNode, values: dict[str, object]) -> None:
    """Insert a cell that overrides the ``parameters`` cell's names, right after it."""
    index = _cell_tagged(nb, "parameters")
    defined = {
        t.id
        for node in ast.parse(nb.cells[index].source).body
        if isinstance(node, ast.Assign)
        for t in node.targets
        if isinstance(t, ast.Name)
    }
    unknown = set(values) - defined
    assert not unknown, f"not defined in the parameters cell: {sorted(unknown)}"
    source = "\n".join(f"{name} = {value!r}" for name, value in values.items())
    cell = nbformat.v4.new_code_cell(source, metadata={"tags": ["injected-parameters"]})
    nb.cells.insert(index + 1, cell)


def test_there_are_notebooks() -> None:
    names = {p.name for p in NOTEBOOKS}
    assert {"01_quickstart.ipynb", "02_drop_in_dam_dsm.ipynb", "03_inside_dam.ipynb"} <= names
    assert set(SMALL) <= names and set(EXPECTED) <= names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_outputs_come_from_one_run(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    counts = [c.get("execution_count") for c in code]
    if all(n is None for n in counts):
        assert not any(c.get("outputs") for c in code), "outputs without execution counts"
        return
    assert counts == list(range(1, len(code) + 1)), f"not one top-to-bottom run: {counts}"
    errors = [o for c in code for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors


def test_drop_in_user_code_is_under_30_lines() -> None:
    nb = nbformat.read(NOTEBOOK_DIR / "02_drop_in_dam_dsm.ipynb", as_version=4)
    source = nb.cells[_cell_tagged(nb, "user-code")].source
    lines = [ln for ln in source.splitlines() if ln.strip() and not ln.strip().startswith("#")]
    assert len(lines) < 30, f"{len(lines)} lines of user code"
    for needed in ("insert_dam(", "DSM()", "ClosureSAM(", "pl.LightningModule"):
        assert needed in source
    assert "automatic_optimization" not in source  # automatic optimisation, as users write it


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs(path: Path, tmp_path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    if path.name in SMALL:
        _with_parameters(nb, SMALL[path.name])
    NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": tmp_path}}
    ).execute()  # raises CellExecutionError when a cell fails
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    text = "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream")
    for expected in EXPECTED.get(path.name, []):
        assert expected in text, f"{expected!r} not in the output of {path.name}"
    if path.name == "03_inside_dam.ipynb":
        assert any("image/png" in o.get("data", {}) for o in outputs)
