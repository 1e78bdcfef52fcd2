"""Argument lists for running the real ``hdf`` CLI on tiny generated data."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytorch_lightning as pl
import yaml

REPO = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent
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
        "--data.protocol=paper",
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


def sam_with_accumulation_config(tmp: Path) -> Path:
    """The demo config (SAM on) with ``accumulate_grad_batches: 2``, a combination ``hdf fit``
    refuses, written to ``tmp/sam_accumulation.yaml``; the run folder is ``tmp/run``."""
    config = yaml.safe_load((REPO / "configs" / "demo.yaml").read_text())
    config["trainer"].update(accumulate_grad_batches=2, default_root_dir=str(tmp / "run"))
    path = tmp / "sam_accumulation.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def tiny_checkpoint(tmp: Path) -> Path:
    """A tiny HDFNet (4 frames, 32 px, Kinetics normalisation) trained for one batch by
    ``hdf fit`` in ``tmp/run``; returns its ``last.ckpt``."""
    from hdf_lightning.cli import main

    main(
        [
            "fit",
            "--config",
            str(REPO / "configs" / "demo.yaml"),
            *TINY_NET,
            *tiny_synthetic_data(tmp / "data"),
            "--data.normalize=kinetics",
            "--trainer.max_epochs=1",
            "--trainer.limit_train_batches=1",
            "--trainer.limit_val_batches=1",
            f"--trainer.default_root_dir={tmp / 'run'}",
            "--trainer.logger=false",
            "--trainer.enable_progress_bar=false",
            "--figures.enabled=false",
        ]
    )
    return tmp / "run" / "checkpoints" / "last.ckpt"


def hdf_env(**extra: str) -> dict[str, str]:
    """Environment of an ``hdf`` subprocess: wandb offline, one intra-op thread, and this
    folder on PYTHONPATH so that test callbacks can be named on the command line."""
    path = os.pathsep.join(p for p in (os.environ.get("PYTHONPATH"), str(TESTS)) if p)
    # one intra-op thread per process: several processes (DDP ranks) share 2 cores in CI
    return {
        **os.environ,
        "WANDB_MODE": "offline",
        "PYTHONUNBUFFERED": "1",
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": path,
        **extra,
    }


def run_hdf(args: list[str], *, cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    """Run the installed ``hdf`` console script in a subprocess (DDP and error-output checks)."""
    env = hdf_env()
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


def run_console(args: list[str], monkeypatch: object, capsys: object) -> tuple[int, str]:
    """Run ``hdf_lightning.cli:main`` as the ``hdf`` console script does (no arguments, the
    command line in ``sys.argv``), in this process; returns (exit code, stderr)."""
    import pytest

    from hdf_lightning.cli import main

    assert isinstance(monkeypatch, pytest.MonkeyPatch)
    monkeypatch.setattr(sys, "argv", ["hdf", *args])
    try:
        result = main()
        code = 0 if result is None else int(result)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    err = capsys.readouterr().err  # type: ignore[attr-defined]
    return code, err


def error_line(stderr: str) -> str:
    """The ``hdf: error:`` paragraph of ``stderr`` (fails when there is none or a traceback)."""
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.startswith("hdf: error:")]
    assert len(lines) == 1, stderr
    return lines[0]


class PauseForSignal(pl.Callback):
    """After optimizer step ``step``, write ``marker`` and wait (up to ``wait`` s) for SIGTERM,
    so that a test can signal a running ``hdf fit`` at a known step."""

    def __init__(self, step: int, marker: str, wait: float = 300.0) -> None:
        self.step = step
        self.marker = marker
        self.wait = wait
        self.paused = False

    def on_train_batch_end(self, trainer: pl.Trainer, *args: object, **kwargs: object) -> None:
        if self.paused or trainer.global_step != self.step:
            return
        self.paused = True
        Path(self.marker).write_text(str(os.getpid()))
        deadline = time.monotonic() + self.wait
        while not trainer.received_sigterm and time.monotonic() < deadline:
            time.sleep(0.05)
