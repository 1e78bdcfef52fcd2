"""Argument lists for running the real ``hdf`` CLI on tiny generated data."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytorch_lightning as pl

REPO = Path(__file__).resolve().parents[1]
HDF = str(Path(sys.executable).with_name("hdf"))

TINY_NET = [
    "--model.net=hdf_lightning.models.HDFNet",
    "--model.net.num_frames=4",
    "--model.net.width_factor=0.5",
    "--model.net.depth_factor=0.3",
    "--model.net.head_dim=32",
]


def tiny_synthetic_data(root: Path, *, batch_size: int = 8, subjects: int = 5) -> list[str]:
    """The demo's synthetic DataModule at 32 px, 4 frames, ``subjects`` x 2 clips."""
    return [
        "--data=hdf_lightning.data.SyntheticDFEWDataModule",
        f"--data.root={root}",
        f"--data.num_subjects={subjects}",
        "--data.clips_per_subject=2",
        "--data.image_size=32",
        "--data.num_frames_range=[6, 10]",
        "--data.num_frames=4",
        "--data.crop_size=32",
        f"--data.batch_size={batch_size}",
        "--data.num_workers=0",
    ]


def tiny_fit_args(tmp: Path, *, epochs: int = 1, extra: list[str] | None = None) -> list[str]:
    """``fit`` of the demo config shrunk to seconds, logging to CSV in ``tmp/run``."""
    return [
        "fit",
        "--config",
        str(REPO / "configs" / "demo.yaml"),
        *TINY_NET,
        *tiny_synthetic_data(tmp / "data"),
        f"--trainer.max_epochs={epochs}",
        f"--trainer.default_root_dir={tmp / 'run'}",
        "--trainer.logger=pytorch_lightning.loggers.CSVLogger",
        f"--trainer.logger.save_dir={tmp / 'run'}",
        "--trainer.enable_progress_bar=false",
        "--trainer.log_every_n_steps=1",
        *(extra or []),
    ]


def run_hdf(args: list[str], *, cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    """Run the installed ``hdf`` console script in a subprocess (DDP and error-output checks)."""
    # one intra-op thread per process: several processes (DDP ranks) share 2 cores in CI
    env = {**os.environ, "WANDB_MODE": "offline", "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [HDF, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


class StopAfterEpochs(pl.Callback):
    """Stop training cleanly after ``epochs`` epochs, as a preempted job would."""

    def __init__(self, epochs: int) -> None:
        self.epochs = epochs

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.current_epoch + 1 >= self.epochs:
            trainer.should_stop = True
