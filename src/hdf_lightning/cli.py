"""The ``hdf`` entry point: dispatches to Lightning's subcommands or to this package's commands.

``hdf fit|validate|test`` run the LightningCLI of :mod:`hdf_lightning.lit.lightning_cli` (YAML
configs, ``--print_config``, ``--ckpt_path``); ``hdf data ...``, ``hdf cv`` and ``hdf cost`` are
the commands of :mod:`hdf_lightning.commands`, ``hdf predict`` and ``hdf export`` those of
:mod:`hdf_lightning.inference`. ``main(args)`` runs without touching ``sys.argv``,
so tests call it directly.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import Any

from hdf_lightning import commands, inference
from hdf_lightning.data.errors import DatasetError
from hdf_lightning.lit.lightning_cli import configure_wandb_mode, make_cli

EXTRA_COMMANDS: dict[str, Callable[[list[str]], int]] = {
    "data": commands.data_main,
    "cv": commands.cv_main,
    "cost": commands.cost_main,
    "predict": inference.predict_main,
    "export": inference.export_main,
}
"""``hdf <name> ...`` commands beside Lightning's subcommands."""


def main(args: Sequence[str] | None = None) -> Any:
    """Entry point of ``hdf``. ``args`` replaces ``sys.argv[1:]`` (for tests and notebooks).

    Returns the LightningCLI object for trainer subcommands, or the exit code of an extra command
    (the console script exits with it). Called as the console script (``args=None``), a dataset
    error is printed as one paragraph on stderr with exit code 2 instead of a traceback.
    """
    if args is not None:
        return _run(args)
    try:
        result = _run(None)
    except DatasetError as err:
        print(f"hdf: error: {err}", file=sys.stderr)
        sys.exit(2)
    # the console script passes the return value to sys.exit: an int is the exit code
    return result if isinstance(result, int) else None


def _run(args: Sequence[str] | None) -> Any:
    argv = list(sys.argv[1:] if args is None else args)
    configure_wandb_mode()
    if argv and argv[0] in EXTRA_COMMANDS:
        return EXTRA_COMMANDS[argv[0]](argv[1:])
    return make_cli(None if args is None else argv)


if __name__ == "__main__":
    main()
