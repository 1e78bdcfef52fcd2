"""The ``hdf`` command line.

``hdf fit|validate|test`` are LightningCLI subcommands (YAML configs, ``--print_config``,
``--ckpt_path``); ``hdf predict``, ``hdf export``, ``hdf data ...``, ``hdf cv`` and ``hdf cost`` are
extra commands of this package.
``main(args)`` runs without touching ``sys.argv`` so tests call it directly.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from jsonargparse import Namespace
from pytorch_lightning import LightningDataModule, Trainer
from pytorch_lightning.callbacks import ModelCheckpoint, ProgressBar, RichProgressBar
from pytorch_lightning.cli import LightningArgumentParser, LightningCLI

from hdf_lightning.lit.module import HDFClassifier, sam_accumulation_error

log = logging.getLogger(__name__)

EXTRA_COMMANDS_HELP = """extra commands:
  hdf data synth     write the synthetic DFER dataset (DFEW or FERV39k layout)
  hdf data verify    count clips, frames, missing and unreadable items of a dataset
  hdf data extract   decode videos into DFEW-style frame folders
  hdf cv             run the DFEW 5-fold protocol and write the results table
  hdf cost           parameters, GFLOPs, peak memory and clips/s of a model
  hdf predict        expression probabilities of your own videos (face crop, sliding windows)
  hdf export         export a checkpoint's network to ONNX / torch.export / TorchScript

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


class RunCheckpoint(ModelCheckpoint):
    """ModelCheckpoint that writes into ``<default_root_dir>/checkpoints`` unless told otherwise.

    With the defaults of :class:`HDFCLI` a run leaves ``checkpoints/best.ckpt`` (highest
    ``val/uar``) and ``checkpoints/last.ckpt`` beside its logs, overwritten by a rerun.
    """

    def setup(self, trainer: Trainer, pl_module: Any, stage: str) -> None:
        if self.dirpath is None:
            self.dirpath = str(Path(trainer.default_root_dir) / "checkpoints")
        super().setup(trainer, pl_module, stage)


def default_callbacks() -> list[Any]:
    """``checkpoints/best.ckpt`` (highest ``val/uar``) and ``checkpoints/last.ckpt`` (every epoch).

    Two callbacks, because ModelCheckpoint's own ``save_last`` only writes when the monitored
    checkpoint is saved, so a run whose UAR stopped improving would resume from a stale epoch.
    """
    from hdf_lightning.inference.record import InferenceRecord

    return [
        InferenceRecord(),
        RunCheckpoint(
            monitor="val/uar",
            mode="max",
            filename="best",
            save_top_k=1,
            enable_version_counter=False,
            auto_insert_metric_name=False,
        ),
        RunCheckpoint(
            monitor=None,
            filename="last",
            save_top_k=1,
            every_n_epochs=1,
            enable_version_counter=False,
        ),
    ]


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
        return super()._instantiate_trainer(config, callbacks)

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


def _extra_commands() -> dict[str, Callable[[list[str]], int]]:
    from hdf_lightning import commands, inference

    return {
        "data": commands.data_main,
        "cv": commands.cv_main,
        "cost": commands.cost_main,
        "predict": inference.predict_main,
        "export": inference.export_main,
    }


def main(args: Sequence[str] | None = None) -> Any:
    """Entry point of ``hdf``. ``args`` replaces ``sys.argv[1:]`` (for tests and notebooks).

    Returns the LightningCLI object for trainer subcommands, or the exit code of an extra command
    (the console script exits with it). Called as the console script (``args=None``), a dataset
    error is printed as one paragraph on stderr with exit code 2 instead of a traceback.
    """
    if args is not None:
        return _run(args)
    from hdf_lightning.data.errors import DatasetError

    try:
        result = _run(None)
    except DatasetError as err:
        print(f"hdf: error: {err}", file=sys.stderr)
        sys.exit(2)
    # the console script passes the return value to sys.exit: an int is the exit code
    return result if isinstance(result, int) else None


def _run(args: Sequence[str] | None) -> Any:
    argv = list(sys.argv[1:] if args is None else args)
    configure_wandb_mode()
    extra = _extra_commands()
    if argv and argv[0] in extra:
        return extra[argv[0]](argv[1:])
    return make_cli(None if args is None else argv)


def make_cli(args: Sequence[str] | None, *, run: bool = True) -> HDFCLI:
    """The :class:`HDFCLI` of ``hdf``; with ``run=False`` it parses and instantiates the model,
    DataModule and trainer of a fit-style config without running a subcommand."""
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
        trainer_defaults={"callbacks": default_callbacks()},
    )


def _raw_formatter() -> type:
    from jsonargparse import DefaultHelpFormatter

    class Formatter(DefaultHelpFormatter):
        def _fill_text(self, text: str, width: int, indent: str) -> str:
            return "".join(indent + line for line in text.splitlines(keepends=True))

    return Formatter


if __name__ == "__main__":
    main()
