"""A trained network and its preprocessing, read back from a checkpoint of ``hdf fit``.

What a checkpoint carries:

* ``state_dict``: the LightningModule's weights, the network's under the ``net.`` prefix;
* ``hyper_parameters``: :class:`~hdf_lightning.lit.HDFClassifier`'s (``num_classes``,
  ``class_names``), without the network, which the module does not save;
* ``datamodule_hyper_parameters``: the DataModule's (``num_frames``, ``crop_size``, ``load_size``,
  ``normalize``, ``sampler``);
* ``hdf_inference`` (written by :class:`~hdf_lightning.inference.record.InferenceRecord`): the
  network's ``class_path`` and ``init_args`` and the preprocessing, in one place, and
  ``face_crop`` when the training clips were face crops of ``hdf data extract --faces``
  (:class:`~hdf_lightning.data.face_crops.FaceCropRecord`).

Checkpoints written without ``hdf_inference`` are read with the network configuration of the
LightningCLI ``config.yaml`` saved beside the run (searched from the checkpoint's folder upwards),
or of a config given with ``--config``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml
from torch import Tensor, nn

from hdf_lightning.checkpoints import check_checkpoint, compare_state_dicts
from hdf_lightning.data.face_crops import FaceCropRecord
from hdf_lightning.data.transforms import NORMALIZATION
from hdf_lightning.errors import CheckpointError
from hdf_lightning.imports import constructor_parameters, import_object
from hdf_lightning.run_folder import find_run_config

__all__ = [
    "CheckpointError",
    "LoadedModel",
    "Preprocessing",
    "load_model",
    "network_weights",
    "read_checkpoint",
]


@dataclass(frozen=True)
class Preprocessing:
    """How a clip must be prepared for the network (what the DataModule did at evaluation).

    Attributes:
        num_frames: frames per clip ``T``.
        crop_size: the network's input side ``S``.
        load_size: side the frames were decoded at (square) before the resize to ``crop_size``.
        normalize: ``"none"`` or ``"kinetics"``.
        mean: per-channel mean subtracted after scaling to [0, 1], or None.
        std: per-channel std, or None.
        class_names: class names, index = label.
        sampler: the frame sampler (``segment`` takes segment centres at evaluation).
    """

    num_frames: int
    crop_size: int
    load_size: int
    normalize: str
    mean: tuple[float, float, float] | None
    std: tuple[float, float, float] | None
    class_names: tuple[str, ...]
    sampler: str = "segment"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (also what ``preprocessing.json`` of ``hdf export`` holds)."""
        out = asdict(self)
        out["class_names"] = list(self.class_names)
        out["mean"] = None if self.mean is None else list(self.mean)
        out["std"] = None if self.std is None else list(self.std)
        out["input_shape"] = ["batch", 3, self.num_frames, self.crop_size, self.crop_size]
        out["input_layout"] = "(B, 3, T, H, W) float32 RGB in [0, 1], then (x - mean) / std"
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Preprocessing:
        normalize = str(data.get("normalize", "none"))
        if normalize not in NORMALIZATION:
            raise ValueError(f"normalize must be one of {sorted(NORMALIZATION)}, got {normalize!r}")
        mean, std = NORMALIZATION[normalize]
        crop = int(data["crop_size"])
        load = data.get("load_size")
        return cls(
            num_frames=int(data["num_frames"]),
            crop_size=crop,
            load_size=crop if load is None else int(load),
            normalize=normalize,
            mean=mean,
            std=std,
            class_names=tuple(str(n) for n in data["class_names"]),
            sampler=str(data.get("sampler", "segment")),
        )


@dataclass
class LoadedModel:
    """The network in eval mode and what it needs.

    Attributes:
        net: ``(B, 3, T, S, S) -> (logits (B, K), feature (B, D))``.
        preprocessing: see :class:`Preprocessing`.
        net_config: ``{"class_path": ..., "init_args": {...}}`` the network was built from.
        path: the checkpoint file.
        face_crop: how the training clips were cropped, or None when the checkpoint does not
            record it (clips not made by ``hdf data extract --faces``, older checkpoints).
    """

    net: nn.Module
    preprocessing: Preprocessing
    net_config: dict[str, Any]
    path: Path
    face_crop: FaceCropRecord | None = None


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The checkpoint dictionary, loaded with ``torch.load(weights_only=True)`` on the CPU.

    Raises:
        CheckpointError: missing file, a file that is not a PyTorch checkpoint (truncated,
            garbage), one holding Python objects that weights-only loading refuses, no
            ``state_dict``, or non-finite weights (see :mod:`hdf_lightning.checkpoints`).
    """
    return check_checkpoint(path, None)


def network_weights(checkpoint: Mapping[str, Any], file: Path) -> dict[str, Tensor]:
    """The network's tensors of an ``hdf fit`` checkpoint: its ``net.*`` entries, prefix removed.

    Args:
        checkpoint: the dictionary :func:`read_checkpoint` returned.
        file: where it was read from (named in the message).

    Raises:
        CheckpointError: the checkpoint holds no ``net.`` tensors.
    """
    weights = {
        k.removeprefix("net."): v
        for k, v in checkpoint["state_dict"].items()
        if k.startswith("net.")
    }
    if not weights:
        raise CheckpointError(f"checkpoint {file} holds no network weights (no 'net.' keys)")
    return weights


def _net_from_config(config: Path) -> dict[str, Any] | None:
    try:
        content = yaml.safe_load(config.read_text()) or {}
    except (OSError, yaml.YAMLError):
        return None
    net = (content.get("model") or {}).get("net") if isinstance(content, dict) else None
    if isinstance(net, dict) and "class_path" in net:
        return {"class_path": net["class_path"], "init_args": dict(net.get("init_args") or {})}
    return None


def _import(class_path: str) -> type:
    cls = import_object(class_path)
    if not isinstance(cls, type):
        raise TypeError(f"{class_path} is not a class")
    return cls


def build_net(
    net_config: dict[str, Any], num_classes: int, num_frames: int | None = None
) -> nn.Module:
    """Instantiate ``class_path(**init_args)`` without pretrained-weight loading.

    ``num_classes`` and ``num_frames`` (the clip length ``T``) are filled in when the class takes
    them and the config lacks them (LightningCLI links both from the DataModule, so a saved
    config does not hold them), and a ``weights`` file argument is dropped: the checkpoint's
    weights replace it anyway.
    """
    cls = _import(str(net_config["class_path"]))
    init_args = dict(net_config.get("init_args") or {})
    if _takes(cls, "num_classes") and init_args.get("num_classes") is None:
        init_args["num_classes"] = num_classes
    if num_frames is not None and init_args.get("num_frames") is None and _takes(cls, "num_frames"):
        init_args["num_frames"] = num_frames
    if _takes(cls, "weights"):
        init_args["weights"] = None
    return cls(**init_args)


def _takes(cls: type, name: str) -> bool:
    """Whether ``cls(name=...)`` is accepted: by its constructor or, passed on through
    ``**kwargs``, by a base class's."""
    return name in constructor_parameters(cls)


def _preprocessing(checkpoint: dict[str, Any], file: Path) -> Preprocessing:
    record = checkpoint.get("hdf_inference") or {}
    if "preprocessing" in record:
        return Preprocessing.from_dict(record["preprocessing"])
    data = checkpoint.get("datamodule_hyper_parameters") or {}
    hparams = checkpoint.get("hyper_parameters") or {}
    missing = [k for k in ("num_frames", "crop_size") if k not in data]
    if missing:
        raise CheckpointError(
            f"checkpoint {file} records no preprocessing ({', '.join(missing)} missing from "
            "its DataModule hyper-parameters); was it written by hdf fit?"
        )
    names = hparams.get("class_names")
    if names is None:
        num = int(hparams.get("num_classes", 7))
        from hdf_lightning.data.classes import CLASS_NAMES

        names = list(CLASS_NAMES)[:num]
    return Preprocessing.from_dict({**data, "class_names": names})


def load_model(path: str | Path, *, config: str | Path | None = None) -> LoadedModel:
    """Rebuild the network of a checkpoint of ``hdf fit`` and load its weights.

    Args:
        path: the ``.ckpt`` file.
        config: a fit config whose ``model.net`` describes the network, for checkpoints that do
            not record it; by default the run's saved ``config.yaml`` is looked up.

    Raises:
        CheckpointError: unreadable checkpoint, no network description, or weights that do not fit
            the network (another architecture); the message names the file.
    """
    file = Path(path)
    checkpoint = read_checkpoint(file)
    preprocessing = _preprocessing(checkpoint, file)
    record = checkpoint.get("hdf_inference") or {}
    net_config = record.get("net")
    if net_config is None:
        source = Path(config) if config is not None else find_run_config(file)
        net_config = _net_from_config(source) if source is not None else None
        if net_config is None:
            raise CheckpointError(
                f"checkpoint {file} does not record its network, and no run config.yaml with a "
                "model.net section was found beside it; pass the fit config with --config"
            )
    num_classes = len(preprocessing.class_names)
    try:
        net = build_net(net_config, num_classes, preprocessing.num_frames)
    except (ImportError, AttributeError, TypeError, ValueError) as err:
        raise CheckpointError(
            f"cannot build the network {net_config.get('class_path')} of checkpoint {file}: {err}"
        ) from err
    weights = network_weights(checkpoint, file)
    diff = compare_state_dicts(weights, net.state_dict())
    if diff.mismatched:
        key, in_file, in_net = diff.mismatched[0]
        raise CheckpointError(
            f"checkpoint {file} does not fit the network {net_config['class_path']}: size "
            f"mismatch for {key}: {in_file} in the checkpoint, {in_net} in the network"
        )
    problems = []
    if diff.missing:
        problems.append(f"missing {len(diff.missing)} (e.g. {diff.missing[0]})")
    if diff.unexpected:
        problems.append(f"unexpected {len(diff.unexpected)} (e.g. {diff.unexpected[0]})")
    if problems:
        raise CheckpointError(
            f"checkpoint {file} does not fit the network {net_config['class_path']}: weights "
            + ", ".join(problems)
        )
    net.load_state_dict(weights)
    face_crop = None
    if record.get("face_crop") is not None:
        try:
            face_crop = FaceCropRecord.from_dict(record["face_crop"])
        except ValueError as err:
            raise CheckpointError(f"checkpoint {file}: unreadable face crop record: {err}") from err
    return LoadedModel(net.eval(), preprocessing, dict(net_config), file, face_crop)
