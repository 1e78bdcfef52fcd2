"""Loading pretrained weights from local files with strict key and shape checks.

Nothing is downloaded: every loader takes a path. A load either fills every parameter and buffer it
is responsible for, with the exact shape, or raises ``ValueError`` naming the offending keys. What
was deliberately not loaded (a Kinetics classifier, DAMs, M3DFEL's aggregation layers) is listed in
the returned :class:`LoadReport`, which is also logged.

This module is architecture-agnostic (read a state dict, checked load, load report); the key maps
of each architecture live beside its builder, as torchvision keeps weights beside its models:

* X3D: :func:`hdf_lightning.models.x3d.load_x3d_weights` (pytorchvideo ``create_x3d`` state dicts
  and hub checkpoints such as ``X3D_S.pyth``, or this package's names);
* r3d_18 into M3DFEL's backbone: :func:`hdf_lightning.models.m3dfel.load_r3d18_weights`.
"""

from __future__ import annotations

import logging
import os
import pickle
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

log = logging.getLogger(__name__)

_WRAPPER_KEYS = ("model_state", "state_dict", "model")


@dataclass(frozen=True)
class LoadReport:
    """What a checkpoint load did.

    Attributes:
        source: the checkpoint path.
        loaded: model keys filled from the checkpoint.
        skipped: checkpoint keys deliberately not loaded (e.g. ``head.proj.weight``).
        kept_init: model keys left at their initial values (e.g. a new classifier, DAMs).
    """

    source: str
    loaded: tuple[str, ...]
    skipped: tuple[str, ...]
    kept_init: tuple[str, ...]

    def summary(self) -> str:
        """One line: counts and the skipped / kept-at-init keys grouped by module."""
        return (
            f"loaded {len(self.loaded)} tensors from {self.source}; "
            f"skipped {len(self.skipped)} checkpoint tensors {_group(self.skipped)}; "
            f"kept {len(self.kept_init)} model tensors at init {_group(self.kept_init)}"
        )


def read_state_dict(path: str | os.PathLike[str]) -> dict[str, Tensor]:
    """Read a state dict from a local file, unwrapping ``{"model_state" | "state_dict": sd}``.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file holds no mapping of names to tensors, or objects that a
            ``weights_only`` load refuses (arbitrary pickled Python objects).
    """
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"no checkpoint file at {file} (weights are only read locally)")
    try:
        obj = torch.load(file, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise ValueError(
            f"{file} holds pickled objects other than tensors and containers, which are not "
            "loaded. If you trust the file, keep only its weights: "
            "torch.save(torch.load(path, weights_only=False)['model_state'], new_path)"
        ) from err
    if isinstance(obj, Mapping):
        for key in _WRAPPER_KEYS:
            inner = obj.get(key)
            if isinstance(inner, Mapping):
                obj = inner
                break
    if not isinstance(obj, Mapping) or not obj:
        raise ValueError(
            f"{file} does not hold a state dict: expected a mapping of names to tensors, "
            f"optionally wrapped as {{'model_state': ...}} or {{'state_dict': ...}}"
        )
    tensors = {str(k): v for k, v in obj.items() if isinstance(v, Tensor)}
    if len(tensors) != len(obj):
        non_tensors = sorted(str(k) for k, v in obj.items() if not isinstance(v, Tensor))
        raise ValueError(f"{file}: expected only tensors in the state dict, got {non_tensors[:5]}")
    return tensors


def load_checked(
    module: nn.Module,
    state_dict: Mapping[str, Tensor],
    *,
    source: str,
    rename: Callable[[str], str | None] = lambda key: key,
    skip: Callable[[str], bool] = lambda key: False,
    keep_init: Callable[[str], bool] = lambda key: False,
) -> LoadReport:
    """Load ``state_dict`` into ``module`` after renaming, with strict key and shape checks.

    Args:
        module: the destination.
        state_dict: checkpoint tensors by checkpoint key.
        source: where the tensors came from (for messages).
        rename: checkpoint key -> model key, or None for a key that has no counterpart.
        skip: model key (after renaming) -> True to leave it out on purpose.
        keep_init: model key -> True when the model may keep it at its initial value.

    Returns:
        The :class:`LoadReport` (also logged at INFO level).

    Raises:
        ValueError: a checkpoint key that is neither mapped nor skipped, a model key that is
            neither provided nor allowed to keep its init, or a shape mismatch (naming the key).
    """
    expected = module.state_dict()
    mapped: dict[str, Tensor] = {}
    skipped: list[str] = []
    unexpected: list[str] = []
    for ckpt_key, tensor in state_dict.items():
        key = rename(ckpt_key)
        if key is not None and skip(key):
            skipped.append(ckpt_key)
        elif key is None or key not in expected:
            unexpected.append(ckpt_key if key in (None, ckpt_key) else f"{ckpt_key} -> {key}")
        else:
            mapped[key] = tensor
    if unexpected:
        raise ValueError(
            f"{source}: {len(unexpected)} checkpoint keys have no place in "
            f"{type(module).__name__}: {_preview(unexpected)}"
        )
    missing = [k for k in expected if k not in mapped and not keep_init(k) and not skip(k)]
    if missing:
        raise ValueError(
            f"{source}: {len(missing)} keys of {type(module).__name__} are missing from the "
            f"checkpoint: {_preview(missing)}"
        )
    for key, tensor in mapped.items():
        if tensor.shape != expected[key].shape:
            raise ValueError(
                f"{source}: shape mismatch for {key!r}: checkpoint {tuple(tensor.shape)}, "
                f"model {tuple(expected[key].shape)} (was the model built with the same "
                "width/depth/head settings?)"
            )
    module.load_state_dict(mapped, strict=False)
    report = LoadReport(
        source=source,
        loaded=tuple(mapped),
        skipped=tuple(skipped),
        kept_init=tuple(k for k in expected if k not in mapped),
    )
    log.info("%s: %s", type(module).__name__, report.summary())
    return report


def _preview(keys: Iterable[str], limit: int = 8) -> str:
    keys = list(keys)
    more = f" ... (+{len(keys) - limit} more)" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more


def _group(keys: Iterable[str]) -> str:
    """``[head.proj (2), dams.1 (24)]``: keys grouped by their first two name parts."""
    counts: dict[str, int] = {}
    for key in keys:
        prefix = ".".join(key.split(".")[:2])
        counts[prefix] = counts.get(prefix, 0) + 1
    return "[" + ", ".join(f"{p} ({n})" for p, n in counts.items()) + "]"
