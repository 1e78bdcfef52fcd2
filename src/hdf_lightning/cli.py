"""The ``hdf`` entry point: dispatches to Lightning's subcommands or to this package's commands.

``hdf fit|validate|test`` run the LightningCLI of :mod:`hdf_lightning.lit.lightning_cli` (YAML
configs, ``--print_config``, ``--ckpt_path``); ``hdf data ...``, ``hdf cv`` and ``hdf cost`` are
the commands of :mod:`hdf_lightning.commands`, ``hdf predict`` and ``hdf export`` those of
:mod:`hdf_lightning.inference`. ``main(args)`` runs without touching ``sys.argv``, so tests call
it directly.

Run as the console script, ``hdf`` ends every failure a user can fix (a
:class:`~hdf_lightning.errors.UserError`, or a configuration Lightning refuses) with one paragraph
``hdf: error: <message>`` on stderr and exit code 2; ``HDF_DEBUG=1`` shows the traceback as well.
A fit stopped by SIGTERM exits with 143 after saving a resumable checkpoint.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
from collections.abc import Callable, Sequence
from typing import Any

from hdf_lightning.errors import INTERRUPTED_EXIT, USER_ERROR_EXIT, UserError
from hdf_lightning.io import CONFIG_FLAG, config_options
from hdf_lightning.usage import TOP_LEVEL_HELP

EXTRA_COMMANDS: dict[str, tuple[str, str]] = {
    "data": ("hdf_lightning.commands", "data_main"),
    "cv": ("hdf_lightning.commands", "cv_main"),
    "cost": ("hdf_lightning.commands", "cost_main"),
    "predict": ("hdf_lightning.inference", "predict_main"),
    "export": ("hdf_lightning.inference", "export_main"),
    "app": ("hdf_lightning.inference", "app_main"),
}
"""``hdf <name> ...`` commands beside Lightning's subcommands: (module, function), imported only
when the command runs, so that ``hdf --help`` loads neither torch nor Lightning."""

HELP_FLAGS = ("-h", "--help")

DEBUG_ENV = "HDF_DEBUG"
"""Environment variable: set to 1 to see the traceback of user errors."""


def main(args: Sequence[str] | None = None) -> Any:
    """Entry point of ``hdf``. ``args`` replaces ``sys.argv[1:]`` (for tests and notebooks).

    Returns the LightningCLI object for trainer subcommands, or the exit code of an extra command
    (the console script exits with it). With ``args`` given, exceptions propagate. Called as the
    console script (``args=None``), a user error is printed as one paragraph on stderr with exit
    code 2 instead of a traceback, and a fit interrupted by SIGTERM exits with code 143.
    """
    if args is not None:
        return _run(args)
    try:
        result = _run(None)
    except Exception as err:
        message = user_error_message(err)
        if message is None or debug_enabled():
            raise
        print(f"hdf: error: {message}", file=sys.stderr)
        sys.exit(USER_ERROR_EXIT)
    except BaseException as exc:  # Lightning's SIGTERMException is a SystemExit
        if not _lightning_error(exc, "pytorch_lightning.utilities.exceptions", "SIGTERMException"):
            raise
        print(interrupt_message(exc, sys.argv[1] if len(sys.argv) > 1 else ""), file=sys.stderr)
        sys.exit(INTERRUPTED_EXIT)
    # the console script passes the return value to sys.exit: an int is the exit code
    return result if isinstance(result, int) else None


def debug_enabled() -> bool:
    """True when ``HDF_DEBUG`` is set to a true value (tracebacks of user errors are shown)."""
    return os.environ.get(DEBUG_ENV, "").strip().lower() not in ("", "0", "false", "no")


def user_error_message(err: BaseException) -> str | None:
    """The one-paragraph message of a user error, or None for an error that is a bug.

    User errors are :class:`~hdf_lightning.errors.UserError` (dataset, checkpoint, option and
    folder errors), Lightning's ``MisconfigurationException`` and the ``FloatingPointError`` of a
    diverged training (its message says what to change). An error raised in a DataLoader
    worker arrives re-raised by torch with the worker's traceback as its message; the original
    message is taken back out of it. A DataLoader worker that delivers no batch within
    ``--data.worker_timeout`` seconds (torch's ``RuntimeError``, the only signal torch gives) is
    reported as a stall.
    """
    if isinstance(err, RuntimeError) and (stall := _LOADER_STALL.match(str(err))):
        return (
            f"a DataLoader worker delivered no batch in {stall.group(1)} s "
            "(--data.worker_timeout): a worker is stuck or the storage is far too slow. Rerun with "
            "--data.num_workers 0 to see where loading stops, or raise --data.worker_timeout"
        )
    misconfigured = _lightning_error(
        err, "lightning_fabric.utilities.exceptions", "MisconfigurationException"
    )
    if not (isinstance(err, UserError | FloatingPointError) or misconfigured):
        return None
    return unwrap_worker_message(err)


def _lightning_error(err: BaseException, module: str, name: str) -> bool:
    """Whether ``err`` is the Lightning exception ``module.name`` (False when Lightning was never
    imported: then nothing could have raised it)."""
    loaded = sys.modules.get(module)
    kind = getattr(loaded, name, None) if loaded is not None else None
    return isinstance(kind, type) and isinstance(err, kind)


# torch's DataLoader reports a stalled worker (a plain RuntimeError) and a worker's error (re-raised
# with the worker's traceback as its message) in text only: these two patterns are the only
# messages of another library that this module reads.
_LOADER_STALL = re.compile(r"^DataLoader timed out after ([\d.]+) seconds")
_WORKER_PREFIX = re.compile(r"^Caught \w+ in DataLoader worker process \d+")


def unwrap_worker_message(err: BaseException) -> str:
    """``str(err)`` without the "Caught X in DataLoader worker process N" traceback wrapper."""
    text = str(err)
    if not _WORKER_PREFIX.match(text):
        return text
    name = re.escape(type(err).__name__)
    matches = list(re.finditer(rf"^(?:[\w.]+\.)?{name}: ", text, flags=re.MULTILINE))
    if not matches:
        return text
    return text[matches[-1].end() :].strip()


def interrupt_message(exc: BaseException, command: str = "fit") -> str:
    """What ``hdf`` prints when a fit stops on SIGTERM: where the checkpoint is, how to resume."""
    path = getattr(exc, "checkpoint_path", None)
    if path is None:
        return "hdf: interrupted by SIGTERM; no checkpoint was written at the interrupt"
    step = getattr(exc, "global_step", "?")
    resume = (
        "Rerun the same hdf cv command: it resumes this fold from it"
        if command == "cv"
        else f"Resume with the same command plus --ckpt_path {path}"
    )
    return f"hdf: interrupted by SIGTERM at step {step}; saved {path}. {resume}"


def config_values(argv: Sequence[str]) -> list[str]:
    """The values of ``--config X`` and ``--config=X`` in a command line, in order."""
    values: list[str] = []
    for i, arg in enumerate(argv):
        if arg.startswith(f"{CONFIG_FLAG}="):
            values.append(arg.split("=", 1)[1])
        elif arg == CONFIG_FLAG and i + 1 < len(argv):
            values.append(argv[i + 1])
    return values


def check_config_files(argv: Sequence[str]) -> None:
    """Refuse every ``--config`` of a command line that gives no mapping of options (see
    :func:`config_options`), before a command's parser reads it: every command ends such a
    mistake in the same one line instead of its parser's usage text."""
    for value in config_values(argv):
        config_options(value)


def extra_command(name: str) -> Callable[[list[str]], int]:
    """The function of the extra command ``name`` (see :data:`EXTRA_COMMANDS`)."""
    module, function = EXTRA_COMMANDS[name]
    return getattr(importlib.import_module(module), function)


def _run(args: Sequence[str] | None) -> Any:
    argv = list(sys.argv[1:] if args is None else args)
    if not argv or argv[0] in HELP_FLAGS:  # answered without loading torch or Lightning
        print(TOP_LEVEL_HELP)
        raise SystemExit(0 if argv else USER_ERROR_EXIT)  # as argparse ends a help or usage
    check_config_files(argv)
    from hdf_lightning.lit.lightning_cli import configure_wandb_mode, make_cli

    configure_wandb_mode()
    if argv[0] in EXTRA_COMMANDS:
        return extra_command(argv[0])(argv[1:])
    return make_cli(None if args is None else argv)


if __name__ == "__main__":
    main()
