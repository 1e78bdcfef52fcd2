"""Private Lightning API is used in one module only, and the installed Lightning still has it."""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path

import pytest

import hdf_lightning
from hdf_lightning.lit import lightning_private
from hdf_lightning.lit.lightning_private import PRIVATE_ATTRIBUTES

SRC = Path(hdf_lightning.__file__).resolve().parent
ADAPTER = Path(lightning_private.__file__).resolve()

PRIVATE_USES = re.compile(
    r"_instantiate_trainer|_parse_ckpt_path|_should_skip_saving_checkpoint|_combined_loader"
    r"|_data_fetcher|_wandb_init|trainer\._|fit_loop\._"
)
"""Private Lightning attributes this package uses or has used."""


def _defining_class(dotted: str) -> type:
    module, name = dotted.rsplit(".", 1)
    return getattr(importlib.import_module(module), name)


@pytest.mark.parametrize(
    ("owner", "attribute"),
    [(owner, attr) for owner, attrs in PRIVATE_ATTRIBUTES.items() for attr in attrs],
)
def test_installed_lightning_has_each_private_attribute_of_the_adapter(
    owner: str, attribute: str
) -> None:
    cls = _defining_class(owner)
    if hasattr(cls, attribute):  # a method or class attribute
        return
    # an attribute set in __init__: look for its assignment in the class's source
    source = inspect.getsource(cls)
    assert re.search(rf"self\.{attribute}\b\s*(:[^=]*)?=", source), (
        f"the installed Lightning's {owner} has no {attribute}: update "
        "hdf_lightning/lit/lightning_private.py for this Lightning version"
    )


def test_the_adapter_lists_every_private_attribute_it_uses() -> None:
    used = set(re.findall(r"(?:\.|\")_([a-z]\w*)", ADAPTER.read_text()))
    listed = {name.lstrip("_") for attrs in PRIVATE_ATTRIBUTES.values() for name in attrs}
    assert used <= listed, f"private attributes used but not listed: {sorted(used - listed)}"


def test_no_private_lightning_attribute_outside_the_adapter() -> None:
    offenders = [
        f"{path.relative_to(SRC.parent)}:{number}: {line.strip()}"
        for path in sorted(SRC.rglob("*.py"))
        if path.resolve() != ADAPTER
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if PRIVATE_USES.search(line)
    ]
    assert not offenders, "private Lightning API outside lit/lightning_private.py:\n" + "\n".join(
        offenders
    )


def test_the_grep_finds_a_private_use() -> None:
    assert PRIVATE_USES.search("        fetcher = trainer.fit_loop._data_fetcher")
    assert PRIVATE_USES.search("return super()._instantiate_trainer(config, callbacks)")
    assert not PRIVATE_USES.search("trainer = self.instantiate_trainer()")
