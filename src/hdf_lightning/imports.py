"""Objects named by an import path, for classes and functions given as text (configs, options).

Imports nothing but :mod:`importlib`, so the light commands can use it.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["import_object"]


def import_object(path: str) -> Any:
    """The object that ``path`` names: ``package.module.Name`` or ``package.module:Name``.

    Raises:
        ValueError: ``path`` names no module (no ``.`` or ``:``, or an empty part).
        ImportError: the module does not import.
        AttributeError: the module has no attribute ``Name``.
    """
    module_name, _, name = path.partition(":") if ":" in path else path.rpartition(".")
    if not module_name or not name:
        raise ValueError(
            f"expected an import path 'package.module.Name' or 'package.module:Name', got {path!r}"
        )
    return getattr(importlib.import_module(module_name), name)
