"""Guards against silent wrong results: checkpoint checks, run folders and the SIGTERM checkpoint.

* :func:`first_nonfinite` / :func:`check_checkpoint` — a checkpoint is read (tensors only, so a
  pickled program is refused), must hold a ``state_dict`` of finite tensors whose names and shapes
  are those of the configured model; otherwise a :class:`~hdf_lightning.errors.CheckpointError`
  names the file and the first offending tensor.
* :func:`check_writable` / :func:`run_checkpoints` — the output folder is writable, and a new fit
  does not mix its files with another run's.
* :class:`InterruptCheckpoint` — on SIGTERM during ``fit``, saves
  ``checkpoints/interrupted.ckpt`` at the interrupted step; resuming from it continues at the next
  batch of the interrupted epoch with the RNG state of that step, so the resumed run ends with the
  weights of an uninterrupted one.
"""

from __future__ import annotations

import logging
import os
import pickle
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.utilities.exceptions import SIGTERMException
from torch import Tensor

from hdf_lightning.errors import CheckpointError, RunFolderError

log = logging.getLogger(__name__)

INTERRUPTED_CKPT = "interrupted.ckpt"
"""File name (in ``<default_root_dir>/checkpoints``) of the checkpoint written on SIGTERM."""


# ------------------------------------------------------------------------------ finite weights
def first_nonfinite(tensors: Mapping[str, Any] | Iterable[tuple[str, Any]]) -> str | None:
    """Name of the first floating-point tensor holding a NaN or an infinity, else None.

    Args:
        tensors: a ``state_dict``-like mapping (or ``named_parameters()``-like pairs) of names to
            tensors; entries that are not floating-point tensors are ignored.
    """
    items = tensors.items() if isinstance(tensors, Mapping) else tensors
    for name, value in items:
        floating = isinstance(value, Tensor) and value.is_floating_point()
        if floating and not bool(torch.isfinite(value.detach()).all()):
            return str(name)
    return None


def module_nonfinite(module: torch.nn.Module) -> str | None:
    """Name of the first parameter or buffer of ``module`` that is not finite, else None."""
    return first_nonfinite(module.state_dict(keep_vars=False))


# ------------------------------------------------------------------------------ checkpoint files
def load_checkpoint_file(path: str | os.PathLike[str], option: str = "--ckpt_path") -> Any:
    """Read a checkpoint file with tensors and plain values only (no arbitrary pickled objects).

    Raises:
        CheckpointError: the file is missing, truncated, not a checkpoint, or holds pickled
            Python objects (which could run code when loaded); the message names the file and
            ``option``.
    """
    file = Path(path)
    if not file.is_file():
        raise CheckpointError(
            f"checkpoint not found: {file} ({option}). Finished runs keep theirs in "
            "<run>/checkpoints/best.ckpt and last.ckpt."
        )
    try:
        return torch.load(file, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        reason = str(err).strip().splitlines()
        detail = next((line for line in reason if "GLOBAL" in line or "Unsupported" in line), "")
        detail = f" ({detail.strip()})" if detail else ""
        raise CheckpointError(
            f"refused to load {file} ({option}): it holds pickled Python objects besides tensors "
            f"and plain values, which could run code when loaded{detail}. "
            "Checkpoints written by hdf never do; use only checkpoint files you trust."
        ) from err
    except Exception as err:  # arbitrary bytes make the unpickler fail in arbitrary ways
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(
            f"cannot read checkpoint {file} ({option}): the file is truncated or not a PyTorch "
            f"checkpoint ({type(err).__name__}: {first})"
        ) from err


def check_checkpoint(
    path: str | os.PathLike[str], model: torch.nn.Module | None, option: str = "--ckpt_path"
) -> dict[str, Any]:
    """Check that ``path`` is a readable Lightning checkpoint of ``model`` with finite weights.

    Args:
        path: the checkpoint file.
        model: the configured LightningModule (its ``state_dict`` names and shapes are compared);
            None skips the comparison.
        option: the command-line option that gave the path (named in messages).

    Returns:
        The loaded checkpoint dictionary.

    Raises:
        CheckpointError: missing or unreadable file, no ``state_dict``, a non-finite tensor, or
            names/shapes of another network (the message says which tensors differ).
    """
    file = Path(path)
    checkpoint = load_checkpoint_file(file, option)
    state = checkpoint.get("state_dict") if isinstance(checkpoint, Mapping) else None
    if not isinstance(state, Mapping):
        raise CheckpointError(
            f"{file} ({option}) is not a Lightning checkpoint: it has no 'state_dict' entry"
        )
    bad = first_nonfinite(state)
    if bad is not None:
        raise CheckpointError(
            f"{file} ({option}) holds non-finite weights (NaN or inf), first in '{bad}': the run "
            "that wrote it diverged. Use an earlier checkpoint of that run or train again with a "
            "lower learning rate."
        )
    if model is not None:
        _check_same_network(file, state, model.state_dict(), option)
    return dict(checkpoint)


def _check_same_network(
    file: Path, saved: Mapping[str, Any], expected: Mapping[str, Any], option: str
) -> None:
    missing = [k for k in expected if k not in saved]
    unexpected = [k for k in saved if k not in expected]
    shapes = [
        f"'{k}' is {tuple(saved[k].shape)} in the file but {tuple(v.shape)} in the model"
        for k, v in expected.items()
        if k in saved and isinstance(v, Tensor) and isinstance(saved[k], Tensor)
        if tuple(saved[k].shape) != tuple(v.shape)
    ]
    if not (missing or unexpected or shapes):
        return
    parts = []
    if shapes:
        parts.append(f"{len(shapes)} tensor(s) of another shape (first: {shapes[0]})")
    if missing:
        parts.append(f"{len(missing)} tensor(s) of the model missing (first: '{missing[0]}')")
    if unexpected:
        parts.append(f"{len(unexpected)} unknown tensor(s) (first: '{unexpected[0]}')")
    raise CheckpointError(
        f"{file} ({option}) was saved from another network than the one configured: "
        f"{'; '.join(parts)}. Pass the --config (model section) of the run that wrote it."
    )


# ------------------------------------------------------------------------------ output folders
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


def run_checkpoints(root: str | os.PathLike[str]) -> list[Path]:
    """Checkpoint files a run left in ``<root>/checkpoints``, newest first."""
    folder = Path(root) / "checkpoints"
    if not folder.is_dir():
        return []
    return sorted(folder.glob("*.ckpt"), key=lambda p: p.stat().st_mtime_ns, reverse=True)


def resume_candidate(root: str | os.PathLike[str]) -> Path | None:
    """The checkpoint to resume a run in ``root`` from: ``interrupted.ckpt``, else ``last.ckpt``,
    else the newest checkpoint file."""
    files = run_checkpoints(root)
    for name in (INTERRUPTED_CKPT, "last.ckpt"):
        for f in files:
            if f.name == name:
                return f
    return files[0] if files else None


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
    :class:`~hdf_lightning.data.samplers.EpochSampler`) and the global RNG is set back to the
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
        folder = (
            Path(self.dirpath) if self.dirpath else Path(trainer.default_root_dir) / "checkpoints"
        )
        return folder / INTERRUPTED_CKPT

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
        tmp = path.with_name(f".{path.name}.tmp")
        trainer.save_checkpoint(tmp)
        if trainer.is_global_zero:
            os.replace(tmp, path)
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
        combined = loop._combined_loader
        fetcher = loop._data_fetcher
        if not 0 < done < total or combined is None or fetcher is None:
            return
        loaders = list(combined.flattened)
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
        iter(fetcher)  # a new iterator that starts at batch `done` of the epoch
        if self._resume_rng is not None:
            torch.set_rng_state(self._resume_rng)
        log.info("resumed inside epoch %d after batch %d of %d", trainer.current_epoch, done, total)

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        path = self.path(trainer)
        if trainer.is_global_zero and path.is_file():
            path.unlink()
