"""Errors a user can fix: a wrong option, file, folder or clip.

The ``hdf`` console command prints a :class:`UserError` as one paragraph
(``hdf: error: <message>``) on stderr and exits with :data:`USER_ERROR_EXIT`; any other exception
is a bug and keeps its traceback. ``HDF_DEBUG=1`` shows the traceback of user errors too.

Every message names what is wrong (the option, the file, the clip and split-file line), what was
found and what to do. This module imports only ``sys``, so every floor of the package can raise
these.
"""

from __future__ import annotations

import sys

USER_ERROR_EXIT = 2
"""Exit code of ``hdf`` for a user error (argparse's code for bad arguments)."""

INTERRUPTED_EXIT = 143
"""Exit code of ``hdf fit`` stopped by SIGTERM after saving a checkpoint (128 + 15, the shell's)."""


class UserError(Exception):
    """Base class of the errors a user can fix; printed as one paragraph without a traceback."""


class ConfigError(UserError, ValueError):
    """An option value is refused (out of range, contradicting another option, or unusable)."""


class CheckpointError(UserError, ValueError):
    """A checkpoint file is missing, unreadable, of another network, or holds non-finite weights."""


class RunFolderError(UserError, OSError):
    """The output folder cannot be written, or already holds another run's checkpoints."""


def command_error(command: str, message: object) -> int:
    """Print ``hdf <command>: error: <message>`` on stderr and return :data:`USER_ERROR_EXIT`.

    For the commands that end a user error themselves (``hdf predict``, ``export``, ``app``:
    their exit code is part of their interface, also when called through ``main(args)``).
    """
    print(f"hdf {command}: error: {message}", file=sys.stderr)
    return USER_ERROR_EXIT


def _cause_chain(err: BaseException) -> list[BaseException]:
    """``err`` and its ``__cause__`` chain, outermost first."""
    chain = [err]
    while chain[-1].__cause__ is not None and all(c is not chain[-1].__cause__ for c in chain):
        chain.append(chain[-1].__cause__)
    return chain


def instantiation_error(err: ValueError) -> Exception:
    """The error to show for a value refused while building the configured classes.

    jsonargparse wraps the constructor's error (e.g. ``DFEW fold must be one of 1..5, got 6``) in
    a long "Does not validate against any of the Union subtypes" error; the constructor's own
    error is its ``__cause__``. The outermost :class:`UserError` of the chain is returned unchanged
    (it may itself be raised from a library error, e.g. a download's network error); otherwise
    the innermost cause becomes a :class:`ConfigError` with its message and the class being built.
    jsonargparse names that class only in its message (``class_path='...'``), which is read
    here and nowhere else.
    """
    chain = _cause_chain(err)
    user = next((c for c in chain if isinstance(c, UserError)), None)
    if user is not None:
        return user
    cause = chain[-1]
    message = str(cause).strip() or type(cause).__name__
    text = str(err)
    marker = "class_path='"
    if cause is not err and marker in text:
        start = text.index(marker) + len(marker)
        class_path = text[start : text.find("'", start)]
        message = f"{message} (building {class_path})"
    return ConfigError(f"invalid configuration: {message}")
