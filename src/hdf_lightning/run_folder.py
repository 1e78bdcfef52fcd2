"""The layout of a run folder (``trainer.default_root_dir``): where every file of a run lives.

One :class:`RunLayout` names them all, so the CLI, the callbacks, the fault guards, ``hdf cv``,
``hdf predict`` and the scripts agree::

    <root>/
        checkpoints/best.ckpt         highest val/uar        (RunLayout.best)
        checkpoints/last.ckpt         end of the last epoch  (RunLayout.last)
        checkpoints/interrupted.ckpt  written on SIGTERM     (RunLayout.interrupted)
        checkpoints/learning_curve.csv
        figures/                      confusion matrices, recalls, learning curve
        predictions/                  test predictions per rank (opt-in)
        config.yaml                   the fit's configuration (config_<command>.yaml otherwise)
        cost_report.json, test_metrics.json, rank_digests.json
        .hdf-run.lock                 held by a live fit

Loggers write their own version or run folders below ``<root>``. This module imports neither
torch nor Lightning.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

CHECKPOINTS = "checkpoints"
"""Folder of a run's checkpoint files."""

BEST = "best"
"""File stem of the checkpoint of the highest ``val/uar``."""

LAST = "last"
"""File stem of the checkpoint written at the end of every epoch."""

INTERRUPTED = "interrupted"
"""File stem of the checkpoint written on SIGTERM."""

CHECKPOINT_SUFFIX = ".ckpt"

FIGURES = "figures"
PREDICTIONS = "predictions"
CONFIG = "config.yaml"
"""The configuration ``hdf fit`` saves; other commands save ``config_<command>.yaml``."""

COST_REPORT = "cost_report.json"
TEST_METRICS = "test_metrics.json"
RANK_DIGESTS = "rank_digests.json"
LEARNING_CURVE_CSV = "learning_curve.csv"
LEARNING_CURVE_PNG = "learning_curve.png"
RUN_LOCK = ".hdf-run.lock"

RUN_FILES = (COST_REPORT, TEST_METRICS, "config*.yaml", RANK_DIGESTS)
"""Files of a run in its root besides its folders (glob patterns)."""

RUN_FOLDERS = (CHECKPOINTS, FIGURES, PREDICTIONS)
"""Folders of a run in its root (loggers' folders excluded)."""


class TrainerFolders(Protocol):
    """What :meth:`RunLayout.for_reports` reads of a trainer (a Lightning ``Trainer`` has both)."""

    @property
    def logger(self) -> object:
        """The trainer's logger (None without one); its ``log_dir`` or ``save_dir`` is read."""

    @property
    def default_root_dir(self) -> str:
        """``trainer.default_root_dir``: the run folder."""


@dataclass(frozen=True, init=False)
class RunLayout:
    """The files of the run in ``root`` (nothing is created or read by building one).

    Args:
        root: the run folder, ``trainer.default_root_dir`` (or a logger's folder, for figures and
            reports of runs that log into one).
    """

    root: Path

    def __init__(self, root: str | os.PathLike[str]) -> None:
        object.__setattr__(self, "root", Path(root))

    @classmethod
    def for_reports(cls, trainer: TrainerFolders) -> RunLayout:
        """The layout a trainer writes its figures and reports into: rooted at the logger's
        ``log_dir`` (or ``save_dir``), else at ``trainer.default_root_dir``."""
        logger = trainer.logger
        for attr in ("log_dir", "save_dir"):
            value = getattr(logger, attr, None) if logger is not None else None
            if value:
                return cls(value)
        return cls(trainer.default_root_dir)

    @property
    def checkpoints(self) -> Path:
        return self.root / CHECKPOINTS

    def checkpoint(self, stem: str) -> Path:
        """``checkpoints/<stem>.ckpt``."""
        return self.checkpoints / f"{stem}{CHECKPOINT_SUFFIX}"

    @property
    def best(self) -> Path:
        return self.checkpoint(BEST)

    @property
    def last(self) -> Path:
        return self.checkpoint(LAST)

    @property
    def interrupted(self) -> Path:
        return self.checkpoint(INTERRUPTED)

    @property
    def figures(self) -> Path:
        return self.root / FIGURES

    @property
    def predictions(self) -> Path:
        return self.root / PREDICTIONS

    @property
    def config(self) -> Path:
        return self.root / CONFIG

    @property
    def cost_report(self) -> Path:
        return self.root / COST_REPORT

    @property
    def test_metrics(self) -> Path:
        return self.root / TEST_METRICS

    @property
    def rank_digests(self) -> Path:
        return self.root / RANK_DIGESTS

    @property
    def lock(self) -> Path:
        return self.root / RUN_LOCK

    def checkpoint_files(self) -> list[Path]:
        """Checkpoint files the run left in ``checkpoints/``, newest first."""
        if not self.checkpoints.is_dir():
            return []
        files = self.checkpoints.glob(f"*{CHECKPOINT_SUFFIX}")
        return sorted(files, key=lambda p: p.stat().st_mtime_ns, reverse=True)

    def resume_candidate(self) -> Path | None:
        """The checkpoint to resume the run from: ``interrupted.ckpt``, else ``last.ckpt``, else
        the newest checkpoint file (None without any)."""
        files = self.checkpoint_files()
        for wanted in (self.interrupted.name, self.last.name):
            for f in files:
                if f.name == wanted:
                    return f
        return files[0] if files else None


def config_filename(command: str) -> str:
    """The file the configuration of ``hdf <command>`` is saved to in the run folder."""
    return CONFIG if command == "fit" else f"config_{command}.yaml"


def find_run_config(checkpoint_path: str | os.PathLike[str]) -> Path | None:
    """The ``config.yaml`` of the run a checkpoint file belongs to, if one is found.

    Looks in the checkpoint's folder and its parent (``<run>/checkpoints/best.ckpt``), then in
    the loggers' folders below the run (``<run>/*/version_*/config.yaml``, then
    ``<run>/*/*/config.yaml``, newest first).
    """
    folder = Path(checkpoint_path).resolve().parent
    for candidate in (folder / CONFIG, folder.parent / CONFIG):
        if candidate.is_file():
            return candidate
    found = sorted(folder.parent.glob(f"*/version_*/{CONFIG}"), key=lambda p: p.stat().st_mtime)
    found += sorted(folder.parent.glob(f"*/*/{CONFIG}"), key=lambda p: p.stat().st_mtime)
    return found[-1] if found else None
