"""Objects named by an import path, for classes and functions given as text (configs, options),
and the arguments such a class accepts.

Imports nothing but :mod:`importlib` and :mod:`inspect`, so the light commands can use it.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

__all__ = ["constructor_parameters", "import_object"]


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


def constructor_parameters(cls: type) -> dict[str, inspect.Parameter]:
    """The named parameters ``cls(...)`` accepts: its constructor's and those it passes on
    through ``**kwargs`` to a base class's (e.g. :class:`~hdf_lightning.models.HDFNet` takes
    :class:`~hdf_lightning.models.X3D`'s); the first declaration of a name wins."""
    found: dict[str, inspect.Parameter] = {}
    for klass in cls.__mro__:
        if klass is object:
            break
        try:
            parameters = inspect.signature(klass.__init__).parameters  # type: ignore[misc]
        except (TypeError, ValueError):
            continue
        for name, parameter in list(parameters.items())[1:]:  # without self
            if parameter.kind not in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
                found.setdefault(name, parameter)
        if not any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
            break
    return found
