"""The one helper that turns an import path into the object it names."""

from __future__ import annotations

import os.path

import pytest

from hdf_lightning.imports import import_object


def test_import_object_takes_a_dotted_or_a_colon_path() -> None:
    assert import_object("os.path.join") is os.path.join
    assert import_object("os.path:join") is os.path.join
    assert import_object("hdf_lightning.layers.dam.DAM").__name__ == "DAM"


@pytest.mark.parametrize("path", ["join", "os.path:", ":join", ".join"])
def test_import_object_refuses_a_path_without_a_module(path: str) -> None:
    with pytest.raises(ValueError, match=r"package\.module\.Name"):
        import_object(path)


def test_import_object_names_what_is_missing() -> None:
    with pytest.raises(ModuleNotFoundError, match="no_such_module"):
        import_object("no_such_module.Thing")
    with pytest.raises(AttributeError, match="no_such_name"):
        import_object("os.path.no_such_name")
