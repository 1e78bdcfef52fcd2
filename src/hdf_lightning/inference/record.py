"""A callback that writes what inference needs into every checkpoint.

``checkpoint["hdf_inference"] = {"net": {"class_path", "init_args"}, "preprocessing": {...},
"face_crop": {...}}``, so ``hdf predict`` and ``hdf export`` rebuild the network and prepare clips
from the checkpoint alone. ``face_crop`` is the DataModule's ``face_crop`` (how its clips were
cropped, :class:`~hdf_lightning.data.face_crops.FaceCropRecord`), present when the DataModule
knows it (clips of ``hdf data extract --faces``).
The network's configuration comes from the LightningCLI config of the run (the
``SaveConfigCallback`` the CLI adds holds it); outside the CLI, from the network's constructor
arguments that are stored as attributes of the same name.
"""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.cli import SaveConfigCallback

from hdf_lightning.imports import constructor_parameters

__all__ = ["InferenceRecord"]


def _plain(value: Any) -> Any:
    """Lists, dicts and scalars only (checkpoints must load with ``weights_only=True``)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def _net_config(trainer: pl.Trainer, net: Any) -> dict[str, Any] | None:
    for callback in trainer.callbacks:  # type: ignore[attr-defined]
        if isinstance(callback, SaveConfigCallback):
            config = callback.config
            model = config.get("model") if hasattr(config, "get") else None
            net_cfg = model.get("net") if model is not None and hasattr(model, "get") else None
            if net_cfg is not None and hasattr(net_cfg, "as_dict"):
                net_dict = net_cfg.as_dict()
                if "class_path" in net_dict:
                    return {
                        "class_path": net_dict["class_path"],
                        "init_args": _plain(net_dict.get("init_args") or {}),
                    }
    cls = type(net)
    init_args: dict[str, Any] = {}
    for name, parameter in constructor_parameters(cls).items():
        if hasattr(net, name):
            init_args[name] = _plain(getattr(net, name))
        elif parameter.default is parameter.empty:
            return None  # a required argument that cannot be recovered
    return {"class_path": f"{cls.__module__}.{cls.__qualname__}", "init_args": init_args}


class InferenceRecord(pl.Callback):
    """Store the network configuration and the preprocessing in ``checkpoint["hdf_inference"]``."""

    def on_save_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        record: dict[str, Any] = {}
        net = getattr(pl_module, "net", None)
        if net is not None:
            config = _net_config(trainer, net)
            if config is not None:
                num_classes = getattr(pl_module, "num_classes", None)
                if num_classes is not None and "num_classes" in constructor_parameters(type(net)):
                    config["init_args"]["num_classes"] = int(num_classes)
                record["net"] = config
        datamodule = getattr(trainer, "datamodule", None)
        names = getattr(pl_module, "class_names", None) or getattr(datamodule, "class_names", None)
        if datamodule is not None and names is not None and hasattr(datamodule, "num_frames"):
            record["preprocessing"] = {
                "num_frames": int(datamodule.num_frames),
                "crop_size": int(datamodule.crop_size),
                "load_size": int(getattr(datamodule, "load_size", None) or datamodule.crop_size),
                "normalize": str(getattr(datamodule, "normalize", "none")),
                "sampler": str(getattr(datamodule, "sampler", "segment")),
                "class_names": [str(n) for n in names],
            }
        face_crop = getattr(datamodule, "face_crop", None)
        if face_crop is not None:
            record["face_crop"] = _plain(face_crop.to_dict())
        checkpoint["hdf_inference"] = record
