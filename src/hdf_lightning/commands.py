"""Commands of ``hdf`` beyond Lightning's fit/validate/test: ``data``, ``cv`` and ``cost``.

Each ``*_main(argv) -> int`` parses its own arguments with jsonargparse and returns an exit code.
The entry point (:mod:`hdf_lightning.cli`) dispatches here; the experiment commands call the
runners of :mod:`hdf_lightning.runners`.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any, Literal

from jsonargparse import ArgumentParser
from pytorch_lightning import LightningDataModule

from hdf_lightning.data.extract import extract_tree
from hdf_lightning.data.splits import DFEW_FOLDS
from hdf_lightning.data.synthetic import SynthConfig, generate_dfew, generate_ferv39k
from hdf_lightning.data.verify import format_report, verify_datamodule
from hdf_lightning.errors import ConfigError, instantiation_error
from hdf_lightning.inference.face import FaceOptions
from hdf_lightning.inference.face_extract import FaceExtractOptions, extract_faces
from hdf_lightning.inference.options import add_options, command_parser, options_from
from hdf_lightning.io import config_options
from hdf_lightning.runners import cost_from_config, run_cross_validation

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------- helpers
def _setup_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")


def config_section(config: str | Path | None, section: str) -> dict[str, Any] | None:
    """The ``section`` (e.g. ``data``) of a fit-style YAML config, or None.

    Raises:
        ConfigError: ``config`` gives no mapping of options (see
            :func:`~hdf_lightning.io.config_options`).
    """
    if config is None:
        return None
    value = config_options(str(config)).get(section)
    return value if isinstance(value, dict) else None


def build_datamodule(config: str | None, overrides: Sequence[str]) -> Any:
    """Instantiate the DataModule of a config (its ``data`` section) plus ``--data.*`` overrides."""
    parser = ArgumentParser(prog="hdf data", exit_on_error=False)
    parser.add_subclass_arguments(LightningDataModule, "data", required=True)
    args: list[str] = []
    section = config_section(config, "data")
    if section is not None:
        args += ["--data", json.dumps(section)]
    args += list(overrides)
    cfg = parser.parse_args(args)
    try:
        init = parser.instantiate_classes(cfg)
    except ValueError as err:
        raise instantiation_error(err) from err
    return init.data


def split_data_overrides(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """Split ``--data.x V`` / ``--data.x=V`` arguments (DataModule overrides) from the rest."""
    overrides: list[str] = []
    rest: list[str] = []
    it = iter(argv)
    for arg in it:
        if arg == "--data" or arg.startswith(("--data.", "--data=")):
            overrides.append(arg)
            if "=" not in arg:
                value = next(it, None)
                if value is None:
                    raise ConfigError(f"{arg} needs a value")
                overrides.append(value)
        else:
            rest.append(arg)
    return overrides, rest


# ------------------------------------------------------------------------------------------- data
def data_main(argv: list[str]) -> int:
    """``hdf data synth|verify|extract``."""
    _setup_logging()
    parser = ArgumentParser(prog="hdf data", description="Dataset tools.")
    sub = parser.add_subcommands(dest="command")

    sub.add_subcommand("synth", _synth_parser())
    verify = ArgumentParser(description="Count and check a dataset; non-zero exit on problems.")
    verify.add_argument("--config", type=str, default=None, help="a fit config (its data section)")
    verify.add_argument("--decode", type=bool, default=True, help="decode every frame/video")
    sub.add_subcommand("verify", verify)

    sub.add_subcommand("extract", _extract_parser())

    overrides, rest = split_data_overrides(argv)
    cfg = parser.parse_args(rest)
    if cfg.command == "synth":
        return _data_synth(cfg.synth)
    if cfg.command == "verify":
        return _data_verify(cfg.verify.config, cfg.verify.decode, overrides)
    return _data_extract(cfg.extract)


def _synth_parser() -> ArgumentParser:
    """``hdf data synth``: ``--out``, ``--layout`` and the fields of :class:`SynthConfig`."""
    parser: ArgumentParser = command_parser(
        "hdf data synth", "Write the synthetic heterogeneous DFER dataset."
    )
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument(
        "--layout", type=Literal["dfew", "ferv39k"], default="dfew", help="folder layout"
    )
    add_options(parser, SynthConfig)
    return parser


def _extract_parser() -> ArgumentParser:
    """``hdf data extract``: the folders, ``--faces``, ``--size`` and the fields of
    :class:`FaceExtractOptions` (the face options apply with ``--faces true`` only)."""
    parser: ArgumentParser = command_parser(
        "hdf data extract",
        "Decode videos into DFEW-style frame folders (PyAV); with --faces, into face crops "
        "cut as hdf predict cuts them, with <out>/manifest.json.",
    )
    parser.add_argument("--videos", type=Path, required=True, help="folder of video files")
    parser.add_argument("--out", type=Path, required=True, help="output root of frame folders")
    parser.add_argument(
        "--faces", type=bool, default=False, help="write face crops (the hdf predict crop)"
    )
    parser.add_argument(
        "--size",
        type=int | None,
        default=None,
        help=f"square frame size (whole frames: native size; --faces: {FaceExtractOptions.size})",
    )
    add_options(parser, FaceExtractOptions, skip={"size"})
    parser.add_argument("--workers", type=int, default=1, help="processes over videos (--faces)")
    parser.add_argument(
        "--recursive",
        type=bool,
        default=False,
        help="--faces: also the videos of sub-folders, into the same relative folders",
    )
    return parser


def _data_synth(cfg: Any) -> int:
    try:
        config = options_from(SynthConfig, cfg)
    except ValueError as err:
        raise ConfigError(f"hdf data synth: {err}") from None
    generate = generate_dfew if cfg.layout == "dfew" else generate_ferv39k
    summary = generate(cfg.out, config)
    print(json.dumps(summary, indent=2, default=str))
    return 0


def _data_verify(config: str | None, decode: bool, overrides: list[str]) -> int:
    dm = build_datamodule(config, overrides)
    report = verify_datamodule(dm, decode=decode)
    print(format_report(report))
    return 0 if report.ok else 1


def _data_extract(cfg: Any) -> int:
    """Extract every video; exit 1 with a summary on stderr when any video failed."""
    if cfg.faces:
        values = cfg.clone()
        values.size = FaceExtractOptions.size if cfg.size is None else cfg.size
        try:
            options = options_from(FaceExtractOptions, values)
        except ValueError as err:
            raise ConfigError(str(err)) from None
        result = extract_faces(
            cfg.videos, cfg.out, options, workers=cfg.workers, recursive=cfg.recursive
        )
    else:
        changed = [f"--{f.name}" for f in fields(FaceOptions) if cfg[f.name] != f.default]
        changed += ["--workers"] if cfg.workers != 1 else []
        if changed:
            raise ConfigError(f"{', '.join(changed)}: only used with --faces true")
        result = extract_tree(
            cfg.videos, cfg.out, size=cfg.size, quality=cfg.quality, keep_damaged=cfg.keep_damaged
        )
    print(json.dumps(result, indent=2, default=str))
    failed: dict[str, str] = result["failed"]
    for video, length in result["damaged"].items():
        if video not in failed:
            print(
                f"WARN {video}: damaged or truncated: extracted the {length['decoded_frames']} "
                f"frames that decode of the {length['declared_frames']} declared",
                file=sys.stderr,
            )
    if not failed:
        return 0
    lines = [
        f"hdf: error: {len(failed)} of {result['videos']} video(s) could not be extracted "
        f"(the other {result['extracted'] + result['skipped']} are in {cfg.out}):"
    ]
    lines += [f"  {reason}" for reason in failed.values()]
    print("\n".join(lines), file=sys.stderr)
    return 1


# --------------------------------------------------------------------------------------------- cv
def cv_main(argv: list[str]) -> int:
    """``hdf cv --config configs/dfew.yaml [--folds [1,2,3]] [--out runs/cv]``."""
    _setup_logging()
    parser = ArgumentParser(prog="hdf cv", description="Run the DFEW 5-fold protocol.")
    parser.add_argument("--config", type=str, required=True, help="fit config (DFEW-style data)")
    parser.add_argument(
        "--folds", type=list[int], default=list(DFEW_FOLDS), help="e.g. [1,2,3] (default: all 5)"
    )
    parser.add_argument("--out", type=Path, default=Path("runs/cv"))
    parser.add_argument(
        "--overrides",
        type=list[str],
        default=[],
        help='extra fit arguments, e.g. ["--trainer.max_epochs=2"]',
    )
    cfg = parser.parse_args(argv)
    for fold in cfg.folds:
        if fold not in DFEW_FOLDS:
            raise ConfigError(f"--folds: DFEW fold must be one of 1..5, got {fold}")
    table = run_cross_validation(cfg.config, folds=cfg.folds, out=cfg.out, overrides=cfg.overrides)
    print(table)
    return 0


# ------------------------------------------------------------------------------------------- cost
def cost_main(argv: list[str]) -> int:
    """``hdf cost --config CFG``: parameters, GFLOPs, peak memory and clips/s of the model."""
    _setup_logging()
    parser = ArgumentParser(prog="hdf cost", description="Cost report of a configured model.")
    parser.add_argument("--config", type=str, required=True, help="fit config with model and data")
    parser.add_argument("--batch_size", type=int, default=1)
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--device", type=str, default="cpu")
    cfg = parser.parse_args(argv)
    report = cost_from_config(
        cfg.config, batch_size=cfg.batch_size, iters=cfg.iters, device=cfg.device
    )
    print(report)
    return 0
