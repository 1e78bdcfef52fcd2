"""Output files: folders checked before work starts, and atomic writes.

:func:`check_writable` refuses an output folder that cannot be written before any work is done.

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

from hdf_lightning.errors import RunFolderError


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
