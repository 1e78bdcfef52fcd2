"""LearningCurve: the per-epoch line, the CSV beside the checkpoints, the PNG, the end-of-fit
summary, and a resumed run that continues the CSV."""

from __future__ import annotations

import csv
import logging
import math
from functools import partial
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint
from torch.utils.data import DataLoader

from cli_utils import StopAfterEpochs, tiny_fit_args
from hdf_lightning.callbacks import LEARNING_CURVE_COLUMNS, LearningCurve, checkpoint_callbacks
from hdf_lightning.cli import main
from hdf_lightning.evaluation.plots import learning_curve_figure
from hdf_lightning.lit import HDFClassifier
from hdf_lightning.losses import ClassificationLoss
from test_module import FixedBatches, K, TinyNet, make_batches


def _messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name.startswith("pytorch_lightning")]


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


# --------------------------------------------------------------------------- the callback alone
def _fake_trainer(root: Path, epoch: int, uar: float | None) -> Any:
    metrics = {}
    if uar is not None:
        metrics = {
            "val/loss": torch.tensor(1.5 - uar),
            "val/war": torch.tensor(uar + 0.1),
            "val/uar": torch.tensor(uar),
        }
    optimizer = SimpleNamespace(param_groups=[{"lr": 0.01 * (epoch + 1)}])
    return SimpleNamespace(
        current_epoch=epoch,
        global_step=10 * (epoch + 1),
        optimizers=[optimizer],
        callback_metrics=metrics,
        sanity_checking=False,
        is_global_zero=True,
        checkpoint_callbacks=[ModelCheckpoint(dirpath=root / "checkpoints", monitor="val/uar")],
        callbacks=[],
        default_root_dir=str(root),
        logger=None,
        log_dir=None,
    )


def _epoch(curve: LearningCurve, trainer: Any, losses: list[tuple[float, int]]) -> None:
    curve.on_train_epoch_start(trainer, None)  # type: ignore[arg-type]
    for index, (loss, size) in enumerate(losses):
        batch = {"label": torch.zeros(size, dtype=torch.long)}
        curve.on_train_batch_end(trainer, None, torch.tensor(loss), batch, index)  # type: ignore[arg-type]
    if trainer.callback_metrics:
        curve.on_validation_end(trainer, None)  # type: ignore[arg-type]
    curve.on_train_epoch_end(trainer, None)  # type: ignore[arg-type]


def test_lines_best_so_far_csv_and_figure(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    curve = LearningCurve()
    uars = [0.3, 0.5, 0.5, 0.4]
    for epoch, uar in enumerate(uars):
        # train loss: batch-size weighted mean of (2.0, 4 clips) and (1.0, 2 clips) = 5/3, ...
        _epoch(curve, _fake_trainer(tmp_path, epoch, uar), [(2.0 - epoch / 10, 4), (1.0, 2)])
    lines = [m for m in _messages(caplog) if m.startswith("epoch ")]
    assert lines == [
        "epoch 0  val WAR 40.0%  val UAR 30.0%  train loss 1.667  (best so far)",
        "epoch 1  val WAR 60.0%  val UAR 50.0%  train loss 1.6  (best so far)",
        "epoch 2  val WAR 60.0%  val UAR 50.0%  train loss 1.533",  # a tie is not an improvement
        "epoch 3  val WAR 50.0%  val UAR 40.0%  train loss 1.467",
    ]
    rows = _read_csv(tmp_path / "checkpoints" / "learning_curve.csv")
    assert list(rows[0]) == list(LEARNING_CURVE_COLUMNS)
    assert [r["epoch"] for r in rows] == ["0", "1", "2", "3"]
    assert [r["step"] for r in rows] == ["10", "20", "30", "40"]
    assert [float(r["val_uar"]) for r in rows] == pytest.approx(uars)
    assert [float(r["best_val_uar"]) for r in rows] == pytest.approx([0.3, 0.5, 0.5, 0.5])
    assert float(rows[0]["train_loss"]) == pytest.approx(5 / 3, rel=1e-5)
    assert float(rows[3]["lr"]) == pytest.approx(0.04)
    best = curve.best()
    assert best is not None and best["epoch"] == 1  # the first epoch with the highest UAR
    assert (tmp_path / "figures" / "learning_curve.png").read_bytes()[:4] == b"\x89PNG"


def test_epoch_without_validation_leaves_the_val_cells_empty(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    curve = LearningCurve()
    _epoch(curve, _fake_trainer(tmp_path, 0, None), [(1.25, 3)])
    assert [m for m in _messages(caplog) if m.startswith("epoch ")] == ["epoch 0  train loss 1.25"]
    row = _read_csv(tmp_path / "checkpoints" / "learning_curve.csv")[0]
    assert row["val_uar"] == row["val_war"] == row["best_val_uar"] == ""
    assert curve.best() is None


def test_disabled_writes_nothing(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    curve = LearningCurve(enabled=False)
    _epoch(curve, _fake_trainer(tmp_path, 0, 0.5), [(1.0, 2)])
    assert not any(m.startswith("epoch ") for m in _messages(caplog))
    assert not (tmp_path / "checkpoints").exists() and not (tmp_path / "figures").exists()


def test_state_dict_round_trip_continues_the_history(tmp_path: Path) -> None:
    first = LearningCurve()
    for epoch, uar in enumerate([0.2, 0.4, 0.3]):
        _epoch(first, _fake_trainer(tmp_path, epoch, uar), [(1.0, 2)])
    resumed = LearningCurve()
    resumed.load_state_dict(first.state_dict())
    # resumed from the checkpoint of epoch 1: epoch 2 is trained again and replaces its row
    _epoch(resumed, _fake_trainer(tmp_path, 2, 0.6), [(0.5, 2)])
    rows = _read_csv(tmp_path / "checkpoints" / "learning_curve.csv")
    assert [r["epoch"] for r in rows] == ["0", "1", "2"]
    assert [float(r["val_uar"]) for r in rows] == pytest.approx([0.2, 0.4, 0.6])
    assert float(rows[2]["best_val_uar"]) == pytest.approx(0.6)


# --------------------------------------------------------------------------- the figure
def test_learning_curve_figure_draws_the_series_in_percent() -> None:
    nan = float("nan")
    figure = learning_curve_figure(
        [0, 1, 2],
        train_loss=[2.0, 1.5, 1.2],
        val_loss=[1.9, 1.7, nan],
        val_war=[0.3, 0.5, 0.55],
        val_uar=[0.25, 0.45, 0.5],
        best_epoch=2,
    )
    loss_axes, war_axes, uar_axes = figure.axes
    train, val = loss_axes.get_lines()[:2]
    np.testing.assert_allclose(train.get_ydata(), [2.0, 1.5, 1.2])
    assert math.isnan(val.get_ydata()[2])  # a gap, not a zero
    np.testing.assert_allclose(war_axes.get_lines()[0].get_ydata(), [30, 50, 55])
    np.testing.assert_allclose(uar_axes.get_lines()[0].get_ydata(), [25, 45, 50])
    best = [line for line in uar_axes.get_lines() if line.get_linestyle() == ":"]
    np.testing.assert_allclose(best[0].get_xdata(), [2, 2])
    assert uar_axes.get_ylabel() == "UAR (%)" and war_axes.get_ylim() == (0.0, 100.0)


def test_learning_curve_figure_rejects_mismatched_lengths() -> None:
    with pytest.raises(ValueError, match=r"val_uar must hold one value per epoch \(2\), got 3"):
        learning_curve_figure([0, 1], train_loss=[1.0, 0.5], val_uar=[0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="at least one epoch"):
        learning_curve_figure([])


# --------------------------------------------------------------------------- in a Trainer
def _module() -> HDFClassifier:
    return HDFClassifier(
        TinyNet(),
        loss=ClassificationLoss(),
        optimizer=partial(torch.optim.SGD, lr=0.05),
        sam=False,
        warmup_epochs=0,
        min_lr=0.01,
        num_classes=K,
        class_names=["a", "b", "c"],
    )


def _fit(root: Path, *, stop_after: int | None = None, ckpt_path: Path | None = None) -> None:
    callbacks: list[pl.Callback] = [*checkpoint_callbacks(), LearningCurve()]
    if stop_after is not None:
        callbacks.append(StopAfterEpochs(stop_after))
    trainer = pl.Trainer(
        accelerator="cpu",
        max_epochs=3,
        default_root_dir=str(root),
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        callbacks=callbacks,
    )
    train = DataLoader(FixedBatches(make_batches(2, seed=1)), batch_size=None)
    val = DataLoader(FixedBatches(make_batches(1, seed=2)), batch_size=None)
    torch.manual_seed(0)
    # weights_only=False: the test's own checkpoint holds the optimizer partial in its hparams
    trainer.fit(
        _module(),
        train_dataloaders=train,
        val_dataloaders=val,
        ckpt_path=ckpt_path,
        weights_only=False,
    )


def test_resumed_fit_continues_the_csv(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    _fit(tmp_path / "full")
    full = _read_csv(tmp_path / "full" / "checkpoints" / "learning_curve.csv")
    assert [r["epoch"] for r in full] == ["0", "1", "2"]
    assert [r["step"] for r in full] == ["2", "4", "6"]
    summary = [m for m in _messages(caplog) if m.startswith("\nfit finished")]
    assert len(summary) == 1
    assert f"checkpoint    {tmp_path / 'full' / 'checkpoints' / 'best.ckpt'}" in summary[0]
    assert "test it with  hdf test --config <your config> --ckpt_path " in summary[0]

    part = tmp_path / "part"
    _fit(part, stop_after=2)
    assert len(_read_csv(part / "checkpoints" / "learning_curve.csv")) == 2
    _fit(part, ckpt_path=part / "checkpoints" / "last.ckpt")
    resumed = _read_csv(part / "checkpoints" / "learning_curve.csv")
    assert [r["epoch"] for r in resumed] == ["0", "1", "2"]
    assert resumed == full  # the same run, interrupted or not


# --------------------------------------------------------------------------- through the CLI
@pytest.mark.slow
def test_hdf_fit_prints_a_line_per_epoch_and_the_summary(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    cli = main(tiny_fit_args(tmp_path, epochs=2))
    messages = _messages(caplog)
    lines = [m for m in messages if m.startswith("epoch ")]
    assert [line.split("  ")[0] for line in lines] == ["epoch 0", "epoch 1"]
    assert all("val WAR " in line and "val UAR " in line for line in lines)
    assert "(best so far)" in lines[0]
    run = tmp_path / "run"
    summary = next(m for m in messages if m.startswith("\nfit finished"))
    best = cli.trainer.checkpoint_callback.best_model_path  # type: ignore[union-attr]
    assert Path(best) == run / "checkpoints" / "best.ckpt"
    config = Path(cli.trainer.log_dir) / "config.yaml"  # type: ignore[arg-type]
    assert config.is_file()
    assert f"test it with  hdf test --config {config} --ckpt_path {best}" in summary
    assert len(_read_csv(run / "checkpoints" / "learning_curve.csv")) == 2
    assert (Path(cli.trainer.log_dir) / "figures" / "learning_curve.png").is_file()  # type: ignore[arg-type]
    # the litlogger advertisement is filtered out
    assert not any("litlogger" in m for m in messages)
