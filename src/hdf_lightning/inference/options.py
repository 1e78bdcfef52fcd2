"""The options of ``hdf predict`` and ``hdf app`` (:class:`PredictOptions`) and the typed command
lines built from option dataclasses.

Each command's flags are generated from one declaration (a dataclass, or a function's signature)
by jsonargparse, as ``hdf fit``'s are from the classes it configures: a default, a type and a help
text (the ``Attributes:`` section of the docstring) live in that declaration only. Every command
built by :func:`command_parser` also takes ``--config <yaml>`` (the options as a YAML file) and
``--print_config`` (prints that YAML).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from hdf_lightning.errors import ConfigError
from hdf_lightning.inference.face import FaceOptions
from hdf_lightning.inference.windows import parse_span
from hdf_lightning.io import config_options

__all__ = [
    "FIT_CONFIG",
    "PredictOptions",
    "add_options",
    "command_parser",
    "options_from",
]

T = TypeVar("T")

FIT_CONFIG = "fit_config"
"""Destination of a checkpoint command's fit config (``--fit_config``, or ``--config`` given a
fit config)."""


@dataclass
class PredictOptions(FaceOptions):
    """Options of ``hdf predict`` and ``hdf app`` (the flags of the same names; the face options are
    :class:`~hdf_lightning.inference.face.FaceOptions`').

    Attributes:
        window: window length, ``2s`` (seconds) or ``50f`` (frames).
        stride: step between window starts, ``0.5s`` or ``12f``.
        fps: frame rate of frame folders.
        batch_size: windows per network call (per clip, 1 is the cheapest on a CPU; raise it on a
            GPU).
        device: torch device of the network.
        timeline: write the timeline PNGs.
    """

    window: str = "2s"
    stride: str = "0.5s"
    fps: float = 25.0
    batch_size: int = 1
    device: str = "cpu"
    timeline: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        self.check_ranges(
            ("fps", self.fps > 0, "> 0"), ("batch_size", self.batch_size >= 1, ">= 1")
        )
        parse_span(self.window, 25.0, name="--window")
        parse_span(self.stride, 25.0, name="--stride")


def options_from(cls: type[T], cfg: Any) -> T:
    """An instance of the dataclass ``cls`` from the fields of a parsed namespace (its own
    checks run: ``ValueError`` names the flag that is out of range)."""
    assert dataclasses.is_dataclass(cls)
    return cls(**{f.name: cfg[f.name] for f in dataclasses.fields(cls) if f.init})


def add_options(parser: Any, cls: type, *, skip: set[str] | None = None) -> None:
    """Add one flag per field of the dataclass ``cls`` to ``parser`` (type, default and help from
    the dataclass), at the top level (``--margin``, not ``--options.margin``)."""
    parser.add_class_arguments(cls, None, as_group=False, skip=skip or set())


def command_parser(prog: str, description: str, *, checkpoint: bool = False) -> Any:
    """A jsonargparse parser with ``--config <yaml>`` (this command's options) and
    ``--print_config``.

    With ``checkpoint``, also ``--ckpt_path`` and ``--fit_config`` (the fit config naming the
    network, for checkpoints that do not record it); ``--config`` then accepts a fit config as
    well (a YAML mapping with a ``model`` key), taken as ``--fit_config``.
    """
    from jsonargparse import ActionConfigFile, ArgumentParser

    parser = ArgumentParser(prog=prog, description=description)
    if not checkpoint:
        parser.add_argument(
            "--config", action=ActionConfigFile, help="a YAML of these options (see --print_config)"
        )
        return parser
    parser.add_argument(
        "--config",
        action=_options_or_fit_config(),
        help="a YAML of these options (see --print_config), or a fit config (as --fit_config)",
    )
    parser.add_argument("--ckpt_path", type=str, required=True, help="checkpoint of hdf fit")
    parser.add_argument(
        f"--{FIT_CONFIG}",
        type=str | None,
        default=None,
        help="fit config naming the network, for checkpoints that do not record it",
    )
    return parser


def _options_or_fit_config() -> type:
    from jsonargparse import ActionConfigFile

    class OptionsOrFitConfig(ActionConfigFile):
        """``--config``: a YAML of the command's options, or a fit config (a mapping with a
        ``model`` key), which names the network of a checkpoint that does not record it."""

        def __call__(self, parser: Any, cfg: Any, values: Any, option_string: Any = None) -> None:
            if _is_fit_config(values):
                cfg[FIT_CONFIG] = str(values)
                return
            super().__call__(parser, cfg, values, option_string)

    return OptionsOrFitConfig


def _is_fit_config(value: Any) -> bool:
    """Whether ``value`` is a YAML file of a fit config (a mapping with a ``model`` key)."""
    path = Path(str(value))
    if not path.is_file():
        return False
    try:
        return "model" in config_options(str(path))
    except ConfigError:
        return False
