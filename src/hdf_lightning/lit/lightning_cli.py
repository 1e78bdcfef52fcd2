"""The LightningCLI of this package: :class:`HDFCLI` and its factory :func:`make_cli`.

Used by the ``hdf`` entry point (:mod:`hdf_lightning.cli`) for ``fit``/``validate``/``test`` and by
the experiment runners (:mod:`hdf_lightning.runners`), which parse a config without running a
subcommand.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from jsonargparse import DefaultHelpFormatter, Namespace
from pytorch_lightning import LightningDataModule, Trainer
from pytorch_lightning.callbacks import ModelCheckpoint, ProgressBar, RichProgressBar
from pytorch_lightning.cli import LightningArgumentParser, LightningCLI

from hdf_lightning.callbacks import (
    CostReportWriter,
    EvaluationFigures,
    LearningCurve,
    checkpoint_callbacks,
)
from hdf_lightning.lit.module import HDFClassifier, sam_accumulation_error

EXTRA_COMMANDS_HELP = """extra commands:
  hdf data synth     write the synthetic DFER dataset (DFEW or FERV39k layout)
  hdf data verify    count clips, frames, missing and unreadable items of a dataset
  hdf data extract   decode videos into DFEW-style frame folders
  hdf cv             run the DFEW 5-fold protocol and write the results table
  hdf cost           parameters, GFLOPs, peak memory and clips/s of a model

Each accepts --help. Quick start: hdf fit --config configs/demo.yaml"""


def wandb_has_credentials() -> bool:
    """True when wandb can log online without asking: an API key in the environment or ~/.netrc."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    netrc = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    try:
        return "api.wandb.ai" in netrc.read_text()
    except OSError:
        return False


def configure_wandb_mode() -> str:
    """Make wandb never block or prompt: offline unless credentials exist or WANDB_MODE is set."""
    if "WANDB_MODE" not in os.environ and not wandb_has_credentials():
        os.environ["WANDB_MODE"] = "offline"
    os.environ.setdefault("WANDB_SILENT", "true")
    return os.environ.get("WANDB_MODE", "online")


class _DropLitLoggerTip(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("💡 Tip: For seamless cloud logging")


def quiet_library_output() -> None:
    """Silence library messages that tell an ``hdf`` user nothing they can act on.

    Exactly these: Lightning's advertisement for its litlogger, and torch's deprecation of
    ``LeafSpec`` raised inside Lightning's own code. (wandb's "anonymous setting" warning is
    removed at its source, see :func:`_drop_unset_wandb_anonymous`; the CPU cost report no longer
    starts the profiler.) Every other warning stays.
    """
    rank_zero = logging.getLogger("pytorch_lightning.utilities.rank_zero")
    if not any(isinstance(f, _DropLitLoggerTip) for f in rank_zero.filters):
        rank_zero.addFilter(_DropLitLoggerTip())
    warnings.filterwarnings(
        "ignore",
        message=r"`isinstance\(treespec, LeafSpec\)` is deprecated",
        category=FutureWarning,
    )


def _drop_unset_wandb_anonymous(trainer: Trainer) -> None:
    """Lightning's WandbLogger passes ``anonymous=None`` to ``wandb.init``, which makes wandb
    warn that the (deprecated) setting has no effect; leave the setting out when it is unset."""
    for logger in trainer.loggers:
        init = getattr(logger, "_wandb_init", None)
        if isinstance(init, dict) and init.get("anonymous", "set") is None:
            del init["anonymous"]


class HDFCLI(LightningCLI):
    """LightningCLI for :class:`HDFClassifier` with any LightningDataModule (``class_path``).

    The DataModule's ``num_classes`` and ``class_names`` are linked into the model, so a config
    names them once. Without a ``trainer.logger`` in the config, runs log to wandb (offline when no
    API key is configured) under ``trainer.default_root_dir``; ``trainer.logger: false`` turns
    logging off and a ``CSVLogger`` is the documented fallback.
    """

    def _instantiate_trainer(self, config: dict[str, Any], callbacks: list[Any]) -> Trainer:
        # Lightning's rich progress bar unless the config turns bars off or brings its own.
        configured = [*callbacks, *(config.get("callbacks") or [])]
        if config.get("enable_progress_bar") is not False and not any(
            isinstance(c, ProgressBar) for c in configured
        ):
            callbacks = [*callbacks, RichProgressBar(leave=True)]
        if config.get("enable_checkpointing") is False:
            # checkpointing turned off: leave out this CLI's default checkpoint callbacks, which
            # Lightning would otherwise refuse as a contradiction
            defaults = self.trainer_defaults.get("callbacks") or []
            self.trainer_defaults = {
                **self.trainer_defaults,
                "callbacks": [c for c in defaults if not isinstance(c, ModelCheckpoint)],
            }
        trainer = super()._instantiate_trainer(config, callbacks)
        _drop_unset_wandb_anonymous(trainer)
        return trainer

    def before_fit(self) -> None:
        # Lightning refuses accumulation under manual optimisation with a generic message; say why.
        accumulate = self.trainer.accumulate_grad_batches
        if getattr(self.model, "use_sam", False) and accumulate > 1:
            raise sam_accumulation_error(accumulate)

    def before_instantiate_classes(self) -> None:
        cfg = self.config[self.subcommand] if self.subcommand else self.config
        trainer = cfg.trainer
        if trainer.logger is None or trainer.logger is True:
            root = Path(trainer.default_root_dir or "runs/default")
            trainer.logger = Namespace(
                class_path="pytorch_lightning.loggers.WandbLogger",
                init_args=Namespace(
                    save_dir=str(root), project="hdf-lightning", name=root.name, log_model=False
                ),
            )

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        # callbacks that write a run's pictures, cost report and learning curve, configurable as
        # `figures.*`, `cost_report.*` and `learning_curve.*` (e.g. --figures.enabled=false)
        parser.add_lightning_class_args(EvaluationFigures, "figures")
        parser.add_lightning_class_args(CostReportWriter, "cost_report")
        parser.add_lightning_class_args(LearningCurve, "learning_curve")
        parser.link_arguments(
            "data", "model.num_classes", compute_fn=_num_classes, apply_on="instantiate"
        )
        parser.link_arguments(
            "data", "model.class_names", compute_fn=_class_names, apply_on="instantiate"
        )
        parser.link_arguments(
            "data",
            "model.net.init_args.num_classes",
            compute_fn=_num_classes,
            apply_on="instantiate",
        )


def _num_classes(datamodule: LightningDataModule) -> int:
    return int(datamodule.num_classes)  # type: ignore[attr-defined]


def _class_names(datamodule: LightningDataModule) -> list[str]:
    return list(datamodule.class_names)  # type: ignore[attr-defined]


def make_cli(args: Sequence[str] | None, *, run: bool = True) -> HDFCLI:
    """The :class:`HDFCLI` of ``hdf``; with ``run=False`` it parses and instantiates the model,
    DataModule and trainer of a fit-style config without running a subcommand."""
    quiet_library_output()
    return HDFCLI(
        model_class=HDFClassifier,
        datamodule_class=LightningDataModule,
        subclass_mode_data=True,
        args=None if args is None else list(args),
        run=run,
        parser_kwargs={
            "description": "HDF for dynamic facial expression recognition (hdf-lightning).",
            "epilog": EXTRA_COMMANDS_HELP,
            "formatter_class": _raw_formatter(),
        },
        auto_configure_optimizers=False,
        save_config_kwargs={"overwrite": True},
        trainer_defaults={"callbacks": checkpoint_callbacks()},
    )


def _raw_formatter() -> type:
    class Formatter(DefaultHelpFormatter):
        def _fill_text(self, text: str, width: int, indent: str) -> str:
            return "".join(indent + line for line in text.splitlines(keepends=True))

    return Formatter
