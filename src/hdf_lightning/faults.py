"""Guards against silent wrong results: the run lock and the SIGTERM checkpoint.

* :class:`RunLock` — a run folder is held by one fit for the whole fit: a second fit started into
  it while the first lives is refused; the lock of a crashed run is recognised as stale.
* :class:`InterruptCheckpoint` — on SIGTERM during ``fit``, saves
  ``checkpoints/interrupted.ckpt`` at the interrupted step; resuming from it continues at the next
  batch of the interrupted epoch with the RNG state of that step, so the resumed run ends with the
  weights of an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import socket
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.utilities.exceptions import SIGTERMException
from torch import Tensor

from hdf_lightning.checkpoints import module_nonfinite
from hdf_lightning.errors import RunFolderError
from hdf_lightning.io import atomic_path
from hdf_lightning.lit.lightning_private import fit_train_loaders, restart_train_iterator
from hdf_lightning.run_folder import RunLayout

log = logging.getLogger(__name__)

__all__ = ["InterruptCheckpoint", "RunLock", "launched_as_secondary_rank"]

# ------------------------------------------------------------------------------ run lock
_RANK_ENV = ("RANK", "LOCAL_RANK", "NODE_RANK", "GROUP_RANK", "SLURM_PROCID")


def launched_as_secondary_rank() -> bool:
    """True in a process that a distributed launcher started as a rank other than 0 (Lightning's
    DDP launcher, torchrun, SLURM): such a process joins the run that rank 0 holds."""
    return any(os.environ.get(name, "0") not in ("", "0") for name in _RANK_ENV)


class RunLock:
    """An exclusive lock on a run folder for the lifetime of a fit.

    The lock is an advisory ``flock`` on ``<root>/.hdf-run.lock`` (``RunLayout(root).lock``),
    which records the holder's pid, host, command line and start time. The kernel releases a
    ``flock`` when its process ends, however it ends, so the file a crashed run left behind is
    recognised as stale (it can be locked again) and taken over with a warning naming the old
    holder. A second fit into a folder
    whose lock is held is refused with the holder's details.

    ``flock`` works between processes of one machine and on most local file systems; on network
    file systems without lock support it may not exclude runs on other hosts.

    Args:
        root: the run folder (``trainer.default_root_dir``); created if missing.
        option: the option that named it, for messages.
    """

    def __init__(self, root: str | os.PathLike[str], option: str = "--trainer.default_root_dir"):
        self.root = Path(root)
        self.option = option
        self.path = RunLayout(self.root).lock
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        """Whether this object holds the lock."""
        return self._fd is not None

    def acquire(self) -> RunLock:
        """Take the lock, or raise :class:`RunFolderError` naming the live run that holds it."""
        if self._fd is not None:
            return self
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _describe_holder(_read_holder(fd))
            os.close(fd)
            raise RunFolderError(
                f"{self.root} ({self.option}) is in use by another fit ({holder}); wait for it "
                "to finish, or choose another --trainer.default_root_dir"
            ) from None
        except OSError:
            os.close(fd)
            raise
        previous = _read_holder(fd)
        if previous:
            log.warning(
                "%s: taking over the stale lock of a run that no longer holds it (%s)",
                self.root,
                _describe_holder(previous),
            )
        record = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": time.strftime("%Y-%m-%d %H:%M:%S"),
            "command": " ".join(sys.argv),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(record) + "\n").encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        """Release the lock and remove its file (nothing when not held)."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        with contextlib.suppress(OSError):
            self.path.unlink()  # still locked: no other run can have taken it in between
        os.close(fd)

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __del__(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)


def _read_holder(fd: int) -> dict[str, Any]:
    try:
        data = os.pread(fd, 4096, 0).decode(errors="replace").strip()
        value = json.loads(data) if data else {}
    except (OSError, ValueError):
        return {"raw": "unreadable lock record"}
    return value if isinstance(value, dict) else {}


def _describe_holder(holder: Mapping[str, Any]) -> str:
    if not holder:
        return "holder unknown"
    if "raw" in holder:
        return str(holder["raw"])
    parts = [f"pid {holder.get('pid', '?')} on {holder.get('host', '?')}"]
    if holder.get("started"):
        parts.append(f"since {holder['started']}")
    if holder.get("command"):
        parts.append(f"command: {holder['command']}")
    return ", ".join(parts)


# ------------------------------------------------------------------------------ SIGTERM
class InterruptCheckpoint(pl.Callback):
    """Save a resumable checkpoint when ``fit`` is stopped by SIGTERM; resume it exactly.

    Lightning's signal handler stops the loop after the running batch with a
    :class:`~pytorch_lightning.utilities.exceptions.SIGTERMException`. This callback then writes
    ``<dirpath>/interrupted.ckpt`` (atomically; not when the weights are non-finite) and records
    its path on the exception (``exception.checkpoint_path``), which the ``hdf`` entry point
    reports before exiting with code 143.

    Resuming from a checkpoint taken inside an epoch, the training sampler skips the batches the
    interrupted run already consumed (samplers with ``skip_next``, such as
    :class:`~hdf_lightning.data.clip_samplers.EpochSampler`) and the global RNG is set back to the
    checkpoint's after the DataLoader iterator is created (creating it draws a seed), so the
    resumed run continues with the batches, dropout masks and weights of the uninterrupted one.
    A fit that ends normally removes ``interrupted.ckpt``.

    Args:
        dirpath: folder of the checkpoint (default ``<default_root_dir>/checkpoints``).
    """

    def __init__(self, dirpath: str | None = None) -> None:
        self.dirpath = dirpath
        self._resume_rng: Tensor | None = None
        self._resumed = False

    def path(self, trainer: pl.Trainer) -> Path:
        """Where the interrupt checkpoint of ``trainer`` is written."""
        layout = RunLayout(trainer.default_root_dir)
        return Path(self.dirpath) / layout.interrupted.name if self.dirpath else layout.interrupted

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        if not isinstance(exception, SIGTERMException) or trainer.state.fn != "fit":
            return
        bad = module_nonfinite(pl_module)
        if bad is not None:
            log.error("SIGTERM: no checkpoint written, the weights are not finite (first: %s)", bad)
            return
        path = self.path(trainer)
        if trainer.is_global_zero:  # only rank 0 writes; every rank takes part in the call
            with atomic_path(path) as tmp:
                trainer.save_checkpoint(tmp)
        else:
            trainer.save_checkpoint(path)
        exception.checkpoint_path = str(path)  # type: ignore[attr-defined]
        exception.global_step = trainer.global_step  # type: ignore[attr-defined]

    def on_load_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        self._resumed = trainer.state.fn == "fit"
        state = checkpoint.get("hdf_rng_state")
        self._resume_rng = state.get("torch") if isinstance(state, Mapping) else None

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self._resumed:
            return
        self._resumed = False
        loop = trainer.fit_loop
        done = int(loop.epoch_loop.batch_progress.current.completed)
        total = trainer.num_training_batches
        loaders = fit_train_loaders(trainer)
        if not 0 < done < total or loaders is None:
            return
        samplers = [getattr(dl, "sampler", None) for dl in loaders]
        if not all(callable(getattr(s, "skip_next", None)) for s in samplers):
            log.warning(
                "resuming inside epoch %d: the training sampler cannot skip the %d batches "
                "already seen, so the epoch restarts its data order",
                trainer.current_epoch,
                done,
            )
            return
        for loader, sampler in zip(loaders, samplers, strict=True):
            sampler.set_epoch(trainer.current_epoch)  # type: ignore[union-attr]
            sampler.skip_next(done * int(loader.batch_size or 1))  # type: ignore[union-attr]
        restart_train_iterator(trainer)  # a new iterator that starts at batch `done` of the epoch
        if self._resume_rng is not None:
            torch.set_rng_state(self._resume_rng)
        log.info("resumed inside epoch %d after batch %d of %d", trainer.current_epoch, done, total)

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        path = self.path(trainer)
        if trainer.is_global_zero and path.is_file():
            path.unlink()
