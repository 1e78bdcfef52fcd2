"""Reading checkpoints safely: tensors only, a ``state_dict`` of finite weights of one network.

Lightning-free, so the training CLI (:mod:`hdf_lightning.faults`) and ``hdf predict`` /
``hdf export`` (:mod:`hdf_lightning.inference`) refuse the same bad files with the same messages:
a missing, truncated or garbage file, one that holds pickled Python objects (which could run code
when loaded), one with non-finite weights, or one of another network. Each
:class:`~hdf_lightning.errors.CheckpointError` names the file and the first offending tensor.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from hdf_lightning.errors import CheckpointError
from hdf_lightning.run_folder import RunLayout

_EXAMPLE_RUN = RunLayout("<run>")


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
class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """No file at a checkpoint path."""


class UnsafeCheckpointError(CheckpointError):
    """A checkpoint holding pickled Python objects besides tensors and plain values.

    Attributes:
        globals: the pickled classes and functions (``module.name``) that were refused.
    """

    def __init__(self, message: str, globals: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.globals = tuple(globals)


def load_checkpoint_file(path: str | os.PathLike[str], option: str = "--ckpt_path") -> Any:
    """Read a checkpoint file with tensors and plain values only (no arbitrary pickled objects).

    The one ``torch.load`` of checkpoint files in this package (Lightning checkpoints, weights
    files and the files ``hdf predict`` reads).

    Raises:
        CheckpointNotFoundError: no file at ``path``.
        UnsafeCheckpointError: the file holds pickled Python objects (which could run code when
            loaded).
        CheckpointError: the file is truncated or not a PyTorch checkpoint.
        Each message is one line naming the file and ``option``.
    """
    file = Path(path)
    if not file.is_file():
        raise CheckpointNotFoundError(
            f"checkpoint not found: {file} ({option}). Finished runs keep theirs in "
            f"{_EXAMPLE_RUN.best} and {_EXAMPLE_RUN.last.name}."
        )
    try:
        return torch.load(file, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        refused = _refused_globals(file, err)
        if not refused:  # random bytes also fail the unpickler: the file is no checkpoint at all
            raise _unreadable(file, option, err) from err
        raise UnsafeCheckpointError(
            f"refused to load {file} ({option}): it holds pickled objects (Python classes or "
            "functions) besides tensors and plain values, which could run code when loaded "
            f"({', '.join(refused)}). "
            "Checkpoints written by hdf never do; use only checkpoint files you trust.",
            refused,
        ) from err
    except Exception as err:  # arbitrary bytes make the unpickler fail in arbitrary ways
        raise _unreadable(file, option, err) from err


def _unreadable(file: Path, option: str, err: BaseException) -> CheckpointError:
    lines = str(err).strip().splitlines()
    first = lines[0] if lines else type(err).__name__
    return CheckpointError(
        f"cannot read checkpoint {file} ({option}): the file is truncated or not a PyTorch "
        f"checkpoint ({type(err).__name__}: {first})"
    )


def _refused_globals(file: Path, err: pickle.UnpicklingError) -> list[str]:
    """The pickled classes and functions that made a ``weights_only`` load refuse ``file``
    (empty when the file is no checkpoint at all).

    Asks ``torch.serialization.get_unsafe_globals_in_checkpoint``. A legacy (pre-zip) PyTorch
    file is beyond that function; for it, torch's error text is the only source: its
    ``Unsupported global: GLOBAL <name>`` line.
    """
    try:
        return list(torch.serialization.get_unsafe_globals_in_checkpoint(file))
    except Exception:  # not a zip checkpoint: read torch's message
        lines = str(err).strip().splitlines()
        return [
            line.split("GLOBAL", 1)[1].split()[0]
            for line in lines
            if "Unsupported global" in line and "GLOBAL" in line.split("Unsupported global")[1]
        ]


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
        _check_same_classes(file, checkpoint, model, option)
        _check_same_network(file, state, model.state_dict(), option)
    return dict(checkpoint)


def _check_same_classes(
    file: Path, checkpoint: Mapping[str, Any], model: torch.nn.Module, option: str
) -> None:
    """The checkpoint's class list (its ``hyper_parameters``) is the configured model's: a
    checkpoint of other classes (another corpus, another ``class_map``, another order) would be
    scored against the wrong labels, even when the two lists happen to have the same length."""
    hparams = checkpoint.get("hyper_parameters")
    saved = hparams.get("class_names") if isinstance(hparams, Mapping) else None
    expected = getattr(model, "class_names", None)
    if saved is None or expected is None or list(saved) == list(expected):
        return
    raise CheckpointError(
        f"{file} ({option}) was trained on the classes [{', '.join(map(str, saved))}] but the "
        f"configured data has [{', '.join(map(str, expected))}]: evaluate it on data with the "
        "same class list (to test on another corpus, map both onto the same classes with "
        "--data.class_map, see README 'Cross-corpus testing')"
    )


@dataclass(frozen=True)
class StateDictDiff:
    """How a saved ``state_dict`` differs from the one a module expects.

    Attributes:
        missing: keys of the expected state absent from the saved one (in expected order).
        unexpected: keys of the saved state the module does not have (in saved order).
        mismatched: ``(key, saved shape, expected shape)`` of tensors of another shape.
    """

    missing: tuple[str, ...]
    unexpected: tuple[str, ...]
    mismatched: tuple[tuple[str, tuple[int, ...], tuple[int, ...]], ...]

    def __bool__(self) -> bool:
        return bool(self.missing or self.unexpected or self.mismatched)


def compare_state_dicts(saved: Mapping[str, Any], expected: Mapping[str, Any]) -> StateDictDiff:
    """The key and shape differences between a saved ``state_dict`` and an expected one.

    The one comparison behind every checkpoint check of this package: ``--ckpt_path``
    (:func:`check_checkpoint`), pretrained weights (:func:`hdf_lightning.models.load_checked`)
    and ``hdf predict`` (:func:`hdf_lightning.inference.checkpoint.load_model`). Shapes are
    compared where both values are tensors.
    """
    return StateDictDiff(
        missing=tuple(k for k in expected if k not in saved),
        unexpected=tuple(k for k in saved if k not in expected),
        mismatched=tuple(
            (k, tuple(saved[k].shape), tuple(v.shape))
            for k, v in expected.items()
            if k in saved and isinstance(v, Tensor) and isinstance(saved[k], Tensor)
            if tuple(saved[k].shape) != tuple(v.shape)
        ),
    )


def _check_same_network(
    file: Path, saved: Mapping[str, Any], expected: Mapping[str, Any], option: str
) -> None:
    diff = compare_state_dicts(saved, expected)
    if not diff:
        return
    parts = []
    if diff.mismatched:
        key, in_file, in_model = diff.mismatched[0]
        first = f"'{key}' is {in_file} in the file but {in_model} in the model"
        parts.append(f"{len(diff.mismatched)} tensor(s) of another shape (first: {first})")
    if diff.missing:
        parts.append(
            f"{len(diff.missing)} tensor(s) of the model missing (first: '{diff.missing[0]}')"
        )
    if diff.unexpected:
        parts.append(f"{len(diff.unexpected)} unknown tensor(s) (first: '{diff.unexpected[0]}')")
    raise CheckpointError(
        f"{file} ({option}) was saved from another network than the one configured: "
        f"{'; '.join(parts)}. Pass the --config (model section) of the run that wrote it."
    )
