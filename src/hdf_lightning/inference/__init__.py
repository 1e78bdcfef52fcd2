"""Inference on a user's own videos and model export.

* :mod:`~hdf_lightning.inference.checkpoint`: the network and preprocessing of a checkpoint;
* :mod:`~hdf_lightning.inference.face`: face detectors, tracking and the square crop;
* :mod:`~hdf_lightning.inference.windows`: sliding windows;
* :mod:`~hdf_lightning.inference.sources`: video files and frame folders;
* :mod:`~hdf_lightning.inference.options`: the options of ``hdf predict`` and ``hdf app``, and
  the typed command lines (``--config``, ``--print_config``) built from option dataclasses;
* :mod:`~hdf_lightning.inference.predict`: ``hdf predict`` on one video (the predictor);
* :mod:`~hdf_lightning.inference.results`: what it finds in a video;
* :mod:`~hdf_lightning.inference.writers`: the files it writes per video;
* :mod:`~hdf_lightning.inference.predict_cli`: the ``hdf predict`` command;
* :mod:`~hdf_lightning.inference.runner`: ``hdf predict`` over many videos (workers, devices,
  resume);
* :mod:`~hdf_lightning.inference.app`: ``hdf app``, a local web page (Gradio, optional);
* :mod:`~hdf_lightning.inference.export`: ``hdf export`` (ONNX, torch.export, TorchScript);
* :mod:`~hdf_lightning.inference.record`: the callback that writes inference metadata into
  checkpoints.

Nothing here imports the CLI; the CLI imports :func:`predict_main`, :func:`export_main` and
:func:`app_main`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hdf_lightning.inference.checkpoint import LoadedModel, Preprocessing, load_model

__all__ = [
    "LoadedModel",
    "Preprocessing",
    "app_main",
    "export_main",
    "load_model",
    "predict_main",
]


def predict_main(argv: list[str]) -> int:
    """``hdf predict`` (see :mod:`hdf_lightning.inference.predict_cli`)."""
    from hdf_lightning.inference.predict_cli import predict_main as main

    return main(argv)


def app_main(argv: list[str]) -> int:
    """``hdf app`` (see :mod:`hdf_lightning.inference.app`)."""
    from hdf_lightning.inference.app import app_main as main

    return main(argv)


def export_main(argv: list[str]) -> int:
    """``hdf export`` (see :mod:`hdf_lightning.inference.export`)."""
    from hdf_lightning.inference.export import export_main as main

    return main(argv)


def __getattr__(name: str) -> object:
    if name in ("LoadedModel", "Preprocessing", "load_model"):
        from hdf_lightning.inference import checkpoint

        return getattr(checkpoint, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
