"""What a piece of code imports, seen from a fresh interpreter (the test process has loaded
everything already)."""

from __future__ import annotations

import ast
import subprocess
import sys

MARK = "LOADED-MODULES"


def loaded_modules(code: str, prefixes: tuple[str, ...]) -> tuple[list[str], str]:
    """Run ``code`` in a new Python process; return the loaded modules whose names start with one
    of ``prefixes`` (sorted) and what ``code`` printed. Fails the test when ``code`` fails."""
    script = (
        f"{code}\nimport sys\n"
        f"print({MARK!r}, sorted(m for m in sys.modules if m.startswith({prefixes!r})))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    printed, _, listed = done.stdout.rpartition(f"{MARK} ")
    return ast.literal_eval(listed.strip()), printed
