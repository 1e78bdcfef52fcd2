"""The files of a command: its ``--config`` read, output folders checked before work starts,
and atomic writes.

:func:`config_options` reads a ``--config`` and refuses, in one line, anything that is not a
mapping of options. :func:`check_writable` refuses an output folder that cannot be written
before any work is done.

A run that is interrupted (Ctrl-C, SIGTERM from a scheduler, a crash) never leaves a truncated
metrics file, cost report, figure or table behind: each is written to a temporary file in the
destination folder and renamed over the destination, which POSIX makes atomic.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hdf_lightning.errors import ConfigError, RunFolderError

CONFIG_FLAG = "--config"
"""The option of every ``hdf`` command that reads its options from a YAML file."""


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], *, keep_suffix: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed to ``path``.

    The parent folder is created. On an exception the temporary file is removed and ``path`` is
    left as it was. ``keep_suffix`` ends the temporary name with ``path``'s suffix, for writers
    that choose the format by it.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    suffix = f".tmp{target.suffix}" if keep_suffix else ".tmp"
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix, dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    finally:
        tmp_path.unlink(missing_ok=True)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_path`); returns the path."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def check_writable(folder: str | os.PathLike[str], option: str) -> None:
    """Create ``folder`` if needed and check that a file can be written in it.

    Raises:
        RunFolderError: the folder cannot be created or written (names it and ``option``).
    """
    path = Path(folder)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".hdf-write-check-"):
            pass
    except OSError as err:
        raise RunFolderError(
            f"cannot write to the output folder {path} ({option}): "
            f"{err.strerror or type(err).__name__}. Choose a writable folder."
        ) from err


def config_options(value: str) -> dict[str, Any]:
    """The options a ``--config`` value gives: the mapping in the YAML file ``value``, or
    ``value`` itself when it is not a path but a YAML (or JSON) mapping written inline.

    Raises:
        ConfigError: one line naming the file and what a config file must be: missing, not a
            file, unreadable, not valid YAML, or not a mapping of options.
    """
    import yaml

    path = Path(value)
    if not path.exists():
        try:
            inline = yaml.safe_load(value)
        except yaml.YAMLError:
            inline = None
        if isinstance(inline, dict):
            return inline
        raise ConfigError(f"config file not found: {path} ({CONFIG_FLAG})")
    if not path.is_file():
        raise ConfigError(f"{CONFIG_FLAG} {path}: not a file (expected a YAML file of options)")
    try:
        content = yaml.safe_load(path.read_text())
    except OSError as err:
        raise ConfigError(
            f"{CONFIG_FLAG} {path}: cannot be read ({err.strerror or type(err).__name__})"
        ) from err
    except UnicodeDecodeError as err:
        raise ConfigError(f"{CONFIG_FLAG} {path}: not a text file (expected YAML)") from err
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or type(err).__name__
        raise ConfigError(f"{CONFIG_FLAG} {path}: not valid YAML ({problem}{where})") from err
    if not isinstance(content, dict):
        found = "nothing" if content is None else f"a {type(content).__name__}"
        raise ConfigError(
            f"{CONFIG_FLAG} {path}: expected a YAML mapping of options (name: value), found {found}"
        )
    return content
