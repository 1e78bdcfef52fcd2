"""The LightningCLI of this package: :class:`HDFCLI` and its factory :func:`make_cli`.

Used by the ``hdf`` entry point (:mod:`hdf_lightning.cli`) for ``fit``/``validate``/``test`` and by
the experiment runners (:mod:`hdf_lightning.runners`), which parse a config without running a
subcommand.
"""

from __future__ import annotations

import importlib
import inspect
import json
import logging
import os
import shutil
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from jsonargparse import DefaultHelpFormatter, Namespace
from pytorch_lightning import LightningDataModule, LightningModule, Trainer
from pytorch_lightning.callbacks import ModelCheckpoint, ProgressBar, RichProgressBar
from pytorch_lightning.cli import (
    ArgsType,
    LightningArgumentParser,
    LightningCLI,
    SaveConfigCallback,
)

from hdf_lightning.callbacks import (
    CostReportWriter,
    EvaluationFigures,
    LearningCurve,
    checkpoint_callbacks,
)
from hdf_lightning.checkpoints import check_checkpoint
from hdf_lightning.errors import ConfigError, RunFolderError, instantiation_error
from hdf_lightning.faults import InterruptCheckpoint, RunLock, launched_as_secondary_rank
from hdf_lightning.inference.record import InferenceRecord
from hdf_lightning.io import atomic_write_text, check_writable
from hdf_lightning.lit.lightning_private import drop_unset_wandb_anonymous
from hdf_lightning.lit.module import HDFClassifier, sam_accumulation_error
from hdf_lightning.run_folder import (
    RUN_FILES,
    RUN_FOLDERS,
    RunLayout,
    config_filename,
)
from hdf_lightning.usage import EXTRA_COMMANDS_HELP

log = logging.getLogger(__name__)

EVALUATION_COMMANDS = ("validate", "test")
"""Subcommands that evaluate trained weights, so they need ``--ckpt_path``."""

SPECIAL_CKPT = ("best", "last", "hpc", "registry")
"""``--ckpt_path`` values Lightning resolves itself (not file names)."""

NO_CHECKPOINT = "none"
"""``--ckpt_path none``: evaluate the configured (untrained) weights on purpose (smoke tests)."""


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
    ``LeafSpec`` raised inside Lightning's own code (wandb's "anonymous setting" warning is
    removed at its source, see
    :func:`~hdf_lightning.lit.lightning_private.drop_unset_wandb_anonymous`). Every other warning
    stays.
    """
    rank_zero = logging.getLogger("pytorch_lightning.utilities.rank_zero")
    if not any(isinstance(f, _DropLitLoggerTip) for f in rank_zero.filters):
        rank_zero.addFilter(_DropLitLoggerTip())
    warnings.filterwarnings(
        "ignore",
        message=r"`isinstance\(treespec, LeafSpec\)` is deprecated",
        category=FutureWarning,
    )


class HDFCLI(LightningCLI):
    """LightningCLI for :class:`HDFClassifier` with any LightningDataModule (``class_path``).

    The DataModule's ``num_classes`` and ``class_names`` are linked into the model, so a config
    names them once. Without a ``trainer.logger`` in the config, runs log to wandb (offline when no
    API key is configured) under ``trainer.default_root_dir``; ``trainer.logger: false`` turns
    logging off and a ``CSVLogger`` is the documented fallback.

    ``hdf fit`` holds a :class:`~hdf_lightning.faults.RunLock` on ``trainer.default_root_dir``
    from the moment its options are checked until it ends, so a second fit into the same folder is
    refused while the first lives.
    """

    def __init__(self, *args: Any, pretrained: bool = True, **kwargs: Any) -> None:
        self._run_lock: RunLock | None = None
        self._frames_conflict: tuple[int, int] | None = None
        self.pretrained = pretrained
        try:
            super().__init__(*args, **kwargs)
        finally:
            self.release_run_lock()

    def release_run_lock(self) -> None:
        """Release the run folder's lock (the fit has ended, or never started)."""
        if self._run_lock is not None:
            self._run_lock.release()
            self._run_lock = None

    @staticmethod
    def subcommands() -> dict[str, set[str]]:
        """Lightning's subcommands less ``predict``: ``hdf predict`` runs on raw videos
        (:mod:`hdf_lightning.inference`)."""
        return {k: v for k, v in LightningCLI.subcommands().items() if k != "predict"}

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        """Instantiate the trainer as LightningCLI does, with this CLI's defaults adjusted.

        Lightning's rich progress bar is added unless the config turns bars off or brings its
        own; with checkpointing turned off, this CLI's default checkpoint callbacks (which
        Lightning would refuse as a contradiction) and the SIGTERM checkpoint are left out.
        """
        cfg = self.config_init[self.subcommand] if self.subcommand else self.config_init
        config = {**(cfg.get("trainer") or {}), **kwargs}
        configured = config.get("callbacks") or []
        configured = configured if isinstance(configured, list) else [configured]
        defaults = list(self.trainer_defaults.get("callbacks") or [])
        if config.get("enable_checkpointing") is False:
            defaults = [
                c for c in defaults if not isinstance(c, ModelCheckpoint | InterruptCheckpoint)
            ]
        if config.get("enable_progress_bar") is not False and not any(
            isinstance(c, ProgressBar) for c in [*configured, *defaults]
        ):
            defaults.append(RichProgressBar(leave=True))
        given = self.trainer_defaults
        self.trainer_defaults = {**given, "callbacks": defaults}
        try:
            trainer = super().instantiate_trainer(**kwargs)
        finally:
            self.trainer_defaults = given
        drop_unset_wandb_anonymous(trainer)
        return trainer

    def instantiate_classes(self) -> None:
        """Instantiate as LightningCLI does; a value a constructor refuses becomes a one-line
        :class:`~hdf_lightning.errors.ConfigError` (jsonargparse wraps it in a long union error)."""
        try:
            super().instantiate_classes()
        except ValueError as err:
            raise instantiation_error(err) from err

    def before_fit(self) -> None:
        self._check_ckpt_path("fit")

    def before_validate(self) -> None:
        self._check_ckpt_path("validate")

    def before_test(self) -> None:
        self._check_ckpt_path("test")

    def after_test(self) -> None:
        """Write ``test_metrics.json`` (atomically) beside the test figures."""
        if not self.trainer.is_global_zero:
            return
        metrics = {
            k: float(v)
            for k, v in sorted(self.trainer.callback_metrics.items())
            if k.startswith("test/")
        }
        ckpt = self.config_init["test"].get("ckpt_path")
        payload = {"ckpt_path": None if ckpt is None else str(ckpt), "metrics": metrics}
        atomic_write_text(
            RunLayout.for_reports(self.trainer).test_metrics, json.dumps(payload, indent=2) + "\n"
        )

    def parse_arguments(self, parser: LightningArgumentParser, args: ArgsType) -> None:
        """Parse as LightningCLI does, then check the ``--ckpt_path`` file (missing, unreadable,
        pickled code, non-finite) before Lightning reads its hyperparameters; the network is
        compared with it once built."""
        super().parse_arguments(parser, args)
        subcommand = self.config.get("subcommand")
        ckpt = self.config[subcommand].get("ckpt_path") if subcommand else None
        if ckpt is not None and str(ckpt).lower() != NO_CHECKPOINT and ckpt not in SPECIAL_CKPT:
            check_checkpoint(ckpt, None, option="--ckpt_path")

    def _check_ckpt_path(self, subcommand: str) -> None:
        """Refuse a missing, unreadable, foreign or non-finite checkpoint with one message."""
        ckpt = self.config_init[subcommand].get("ckpt_path")
        if ckpt is None or ckpt in SPECIAL_CKPT:
            return
        model = self.model if isinstance(self.model, LightningModule) else None
        check_checkpoint(ckpt, model, option="--ckpt_path")

    def before_instantiate_classes(self) -> None:
        cfg = self.config[self.subcommand] if self.subcommand else self.config
        if self._frames_conflict is not None:
            data_frames, net_frames = self._frames_conflict
            raise ConfigError(
                f"--data.num_frames={data_frames} but --model.net.num_frames={net_frames}: the "
                f"network's num_frames follows the data's clip length ({data_frames} frames); "
                "leave --model.net.num_frames out or give it the same value"
            )
        if self.subcommand is None:  # a training configuration run by hdf cv or hdf cost
            self._check_training_config(cfg)
        else:
            self._check_subcommand(self.subcommand, cfg)
        evaluates_checkpoint = self.subcommand in EVALUATION_COMMANDS and cfg.get("ckpt_path")
        if not self.pretrained or evaluates_checkpoint:
            _without_pretrained_weights(cfg)
        trainer = cfg.trainer
        if trainer.logger is None or trainer.logger is True:
            root = Path(trainer.default_root_dir or "runs/default")
            trainer.logger = Namespace(
                class_path="pytorch_lightning.loggers.WandbLogger",
                init_args=Namespace(
                    save_dir=str(root), project="hdf-lightning", name=root.name, log_model=False
                ),
            )

    def _check_subcommand(self, subcommand: str, cfg: Namespace) -> None:
        """Checks on the parsed configuration, before any class is built or data is read."""
        self.save_config_kwargs = {
            **self.save_config_kwargs,
            "config_filename": config_filename(subcommand),
        }
        ckpt = cfg.get("ckpt_path")
        if subcommand in EVALUATION_COMMANDS:
            if ckpt is None:
                example = RunLayout("runs/<run>")
                raise ConfigError(
                    f"hdf {subcommand} evaluates trained weights, but no --ckpt_path was given. "
                    f"Pass a checkpoint, e.g. hdf {subcommand} --config {example.config} "
                    f"--ckpt_path {example.best} (or --ckpt_path none to "
                    "evaluate the untrained network on purpose)"
                )
            if str(ckpt).lower() == NO_CHECKPOINT:
                cfg.ckpt_path = None
        trainer = cfg.trainer
        root = Path(trainer.default_root_dir or os.getcwd())
        check_writable(root, "--trainer.default_root_dir")
        logger = trainer.get("logger")
        save_dir = logger.get("init_args.save_dir") if isinstance(logger, Namespace) else None
        if save_dir:
            check_writable(save_dir, "--trainer.logger.init_args.save_dir")
        if subcommand == "fit":
            self._check_training_config(cfg)
            if not launched_as_secondary_rank():  # the other DDP ranks join rank 0's run
                self._run_lock = RunLock(root).acquire()
            self._check_run_folder(root, ckpt, bool(cfg.get("overwrite")))

    @staticmethod
    def _check_training_config(cfg: Namespace) -> None:
        """Checks that the model can be trained with the trainer's settings, before any class is
        built: run for ``hdf fit`` and for the configurations ``hdf cv`` and ``hdf cost`` parse
        without a subcommand."""
        # Lightning refuses accumulation under manual optimisation with a generic message
        accumulate = cfg.trainer.get("accumulate_grad_batches") or 1
        if cfg.get("model.sam") and accumulate > 1:
            raise ConfigError(str(sam_accumulation_error(accumulate)))

    @staticmethod
    def _check_run_folder(root: Path, ckpt: Any, overwrite: bool) -> None:
        """A new fit may not write into a folder that holds another run's checkpoints."""
        layout = RunLayout(root)
        existing = layout.checkpoint_files()
        if not existing or ckpt is not None:
            return
        if overwrite:
            log.warning("--overwrite: removing the previous run's files in %s", root)
            clear_run(root)
            return
        resume = layout.resume_candidate()
        names = ", ".join(sorted(p.name for p in existing))
        raise RunFolderError(
            f"{root} already holds a run ({layout.checkpoints.name}/{names}); resume it with "
            f"--ckpt_path {resume}, choose another --trainer.default_root_dir, or pass "
            "--overwrite true to replace it"
        )

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_argument(
            "--overwrite",
            type=bool,
            default=False,
            help="fit: replace the run (checkpoints, figures, reports) already in "
            "trainer.default_root_dir instead of refusing to start (other commands ignore it)",
        )
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
        parser.link_arguments(
            ("data.init_args.num_frames", "model.net"),
            "model.net.init_args.num_frames",
            compute_fn=self._net_num_frames,
            apply_on="parse",
        )

    def _net_num_frames(self, data_frames: int | None, net: Namespace | None) -> int | None:
        """The network's ``num_frames``: the DataModule's clip length ``T``.

        A value given to the network (config or command line) that differs from the data's and
        from the network's own default is remembered and refused before anything is built; a
        value equal to the network's default follows the data.
        """
        init_args = net.get("init_args") if isinstance(net, Namespace) else None
        given = init_args.get("num_frames") if isinstance(init_args, Namespace) else None
        if not isinstance(data_frames, int):
            return given
        default = _default_num_frames(net.get("class_path") if isinstance(net, Namespace) else None)
        if isinstance(given, int) and given not in (data_frames, default):
            self._frames_conflict = (data_frames, given)
        return data_frames


class RunConfig(SaveConfigCallback):
    """Saves the command's configuration (``config.yaml`` for fit, ``config_<command>.yaml``
    otherwise) with ``overwrite`` reset, so reusing a fit's file never replaces a run."""

    def __init__(self, parser: LightningArgumentParser, config: Namespace, **kwargs: Any) -> None:
        config = config.clone()
        if "overwrite" in config:
            config.overwrite = False
        super().__init__(parser, config, **kwargs)


def clear_run(root: Path) -> None:
    """Remove a previous run's checkpoints, figures and reports from ``root`` (``--overwrite``);
    logger folders are left: each run logs to a version or run folder of its own."""
    for folder in RUN_FOLDERS:
        shutil.rmtree(root / folder, ignore_errors=True)
    for pattern in RUN_FILES:
        for path in root.glob(pattern):
            path.unlink(missing_ok=True)


def _default_num_frames(class_path: Any) -> int | None:
    """The default ``num_frames`` of the network class ``class_path`` (None when it has none)."""
    if not isinstance(class_path, str) or "." not in class_path:
        return None
    module, _, name = class_path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        return None
    # a subclass may pass num_frames on to its base class's constructor (**kwargs)
    for klass in getattr(cls, "__mro__", ()):
        try:
            parameter = inspect.signature(klass.__init__).parameters.get("num_frames")
        except (TypeError, ValueError):
            continue
        if parameter is not None:
            default = parameter.default
            return default if isinstance(default, int) else None
    return None


def _without_pretrained_weights(cfg: Namespace) -> None:
    """Build the network without its pretrained ``weights`` (a name or path) when they would be
    replaced anyway: evaluating a checkpoint, or measuring cost. Nothing is read or downloaded,
    so ``hdf test --config <a recipe> --ckpt_path ...`` works offline with an empty cache."""
    key = "model.net.init_args.weights"
    if cfg.get(key) is not None:
        log.info("not loading %s: the checkpoint's weights replace them", cfg[key])
        cfg[key] = None


def _num_classes(datamodule: LightningDataModule) -> int:
    return int(datamodule.num_classes)  # type: ignore[attr-defined]


def _class_names(datamodule: LightningDataModule) -> list[str]:
    return list(datamodule.class_names)  # type: ignore[attr-defined]


def make_cli(args: Sequence[str] | None, *, run: bool = True, pretrained: bool = True) -> HDFCLI:
    """The :class:`HDFCLI` of ``hdf``; with ``run=False`` it parses and instantiates the model,
    DataModule and trainer of a fit-style config without running a subcommand; with
    ``pretrained=False`` the network is built without its pretrained ``weights``."""
    quiet_library_output()
    return HDFCLI(
        pretrained=pretrained,
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
        save_config_callback=RunConfig,
        save_config_kwargs={"overwrite": True},
        trainer_defaults={
            "callbacks": [InferenceRecord(), *checkpoint_callbacks(), InterruptCheckpoint()]
        },
    )


def _raw_formatter() -> type:
    class Formatter(DefaultHelpFormatter):
        def _fill_text(self, text: str, width: int, indent: str) -> str:
            return "".join(indent + line for line in text.splitlines(keepends=True))

    return Formatter
