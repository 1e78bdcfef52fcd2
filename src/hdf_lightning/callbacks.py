"""Callbacks: everything a run writes to disk, kept out of the LightningModule.

The ``hdf`` CLI adds the first four by default:

* :class:`RunCheckpoint` / :func:`checkpoint_callbacks` — ``checkpoints/best.ckpt`` (highest
  ``val/uar``) and ``checkpoints/last.ckpt`` (every epoch) under ``trainer.default_root_dir``;
* :class:`EvaluationFigures` — the confusion matrix and per-class recall PNGs after each
  validation and test (and a PCA picture of the test features when asked), in ``<run>/figures``,
  also sent to a logger that takes images;
* :class:`CostReportWriter` — at the start of ``test``, parameters, GFLOPs per clip, peak memory
  and clips/s of the network at the DataModule's input size, printed and written to
  ``<run>/cost_report.json``;
* :class:`LearningCurve` — during ``fit``, one console line per epoch (val WAR, val UAR, train
  loss, best so far), ``checkpoints/learning_curve.csv`` and ``<run>/figures/learning_curve.png``,
  and a summary at the end (best epoch, checkpoint, figures, the command that tests it).

Opt-in:

* :class:`RankConsistencyCheck` — after training, every rank hashes its parameters; the run
  fails loudly if the ranks disagree (a DDP bug would otherwise go unnoticed), and rank 0 writes
  the digests to ``<default_root_dir>/rank_digests.json``.
* :class:`EvalPredictionWriter` — writes each rank's test predictions (dataset index, label,
  prediction, probabilities) to ``<default_root_dir>/predictions/test_rank<r>.pt`` so that
  metrics can be
  recomputed offline over the whole evaluation set.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import math
import os
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.utilities import rank_zero_info
from torch import Tensor

from hdf_lightning import run_folder
from hdf_lightning.checkpoints import module_nonfinite
from hdf_lightning.evaluation import plots
from hdf_lightning.evaluation.cost import format_cost, measure_cost
from hdf_lightning.io import atomic_path, atomic_write_text
from hdf_lightning.lit.lightning_private import RefusableCheckpoint
from hdf_lightning.run_folder import RunLayout

log = logging.getLogger(__name__)


class RunCheckpoint(RefusableCheckpoint):
    """ModelCheckpoint that writes into ``<default_root_dir>/checkpoints`` unless told otherwise,
    and never writes (nor ranks as best) weights holding a NaN or an infinity."""

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if self.dirpath is None:
            self.dirpath = str(RunLayout(trainer.default_root_dir).checkpoints)
        super().setup(trainer, pl_module, stage)

    def refuses_to_save(self, trainer: pl.Trainer) -> bool:
        """Refuse (and log) a checkpoint of weights that hold a NaN or an infinity."""
        bad = module_nonfinite(trainer.lightning_module)
        if bad is not None:
            log.error(
                "not writing %s checkpoint at step %d: non-finite weights (first: %s)",
                self.filename or "a",
                trainer.global_step,
                bad,
            )
        return bad is not None


def checkpoint_callbacks() -> list[RunCheckpoint]:
    """``checkpoints/best.ckpt`` (highest ``val/uar``) and ``checkpoints/last.ckpt`` (every epoch).

    Two callbacks, because ModelCheckpoint's own ``save_last`` only writes when the monitored
    checkpoint is saved, so a run whose UAR stopped improving would resume from a stale epoch.
    """
    return [
        RunCheckpoint(
            monitor="val/uar",
            mode="max",
            filename=run_folder.BEST,
            save_top_k=1,
            enable_version_counter=False,
            auto_insert_metric_name=False,
        ),
        RunCheckpoint(
            monitor=None,
            filename=run_folder.LAST,
            save_top_k=1,
            every_n_epochs=1,
            enable_version_counter=False,
        ),
    ]


class CollectedTestRows(pl.Callback):
    """Keeps one row of tensors per test batch of this rank, from the start of the test epoch.

    A subclass says what a batch contributes (:meth:`test_row`); :meth:`merged_rows` joins the
    rows of the epoch along the batch dimension.
    """

    def __init__(self) -> None:
        self._rows: list[dict[str, Tensor]] = []

    def test_row(
        self, pl_module: pl.LightningModule, outputs: Any, batch: Any
    ) -> dict[str, Tensor] | None:
        """The tensors (first dimension: the batch's clips) to keep of a test batch, or None."""
        raise NotImplementedError

    def merged_rows(self) -> dict[str, Tensor] | None:
        """Every key's tensors of the epoch concatenated along dimension 0 (None without rows)."""
        if not self._rows:
            return None
        return {key: torch.cat([row[key] for row in self._rows]) for key in self._rows[0]}

    def on_test_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._rows.clear()

    def on_test_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        row = self.test_row(pl_module, outputs, batch)
        if row is not None:
            self._rows.append(row)


class EvaluationFigures(CollectedTestRows):
    """Confusion matrix and per-class recall pictures after each validation and test.

    Reads the metrics the module computed (``pl_module.eval_results[stage]``, written by
    :class:`~hdf_lightning.lit.HDFClassifier` at the end of the evaluation epoch) and writes
    ``<run>/figures/val_epoch<NNN>_*.png`` and ``test_*.png`` on rank 0; loggers with
    ``log_image`` (wandb) receive them too. Classes without evaluation samples are drawn as
    absent, and the UAR line is the logged UAR.

    Args:
        enabled: write the pictures.
        embedding: also draw a PCA plot of the test features (rank 0's clips), coloured by class.
    """

    def __init__(self, enabled: bool = True, embedding: bool = False) -> None:
        super().__init__()
        self.enabled = enabled
        self.embedding = embedding

    def test_row(
        self, pl_module: pl.LightningModule, outputs: Any, batch: Any
    ) -> dict[str, Tensor] | None:
        """The batch's features ``(B, D)`` and labels ``(B,)`` when the PCA plot is drawn."""
        if self.enabled and self.embedding and isinstance(outputs, dict) and "feature" in outputs:
            return {
                "feature": outputs["feature"].float().cpu(),
                "label": batch["label"].detach().cpu(),
            }
        return None

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._draw(trainer, pl_module, "val")

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._draw(trainer, pl_module, "test")

    def _draw(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        values = getattr(pl_module, "eval_results", {}).get(stage)
        if not self.enabled or values is None or not trainer.is_global_zero:
            return
        names = list(getattr(pl_module, "class_names", values["per_class_recall"]))
        support = values.get("support")
        recalls = [
            float(v) if support is None or int(support[i]) > 0 else float("nan")
            for i, v in enumerate(values["per_class_recall"].values())
        ]
        uar = float(values["uar"])
        figures = {
            f"{stage}/confusion_matrix": plots.confusion_matrix_figure(
                values["confusion_matrix"].cpu(),
                names,
                title=f"{stage} confusion matrix (recall per true class)",
            ),
            f"{stage}/per_class_recall": plots.per_class_recall_figure(
                recalls, names, title=f"{stage} per-class recall (UAR {uar:.3f})", uar=uar
            ),
        }
        rows = self.merged_rows() if stage == "test" and self.embedding else None
        if rows is not None:
            figures["test/embedding"] = plots.embedding_figure(
                rows["feature"], rows["label"], names, method="pca"
            )
        folder = RunLayout.for_reports(trainer).figures
        tag = f"{stage}_epoch{trainer.current_epoch:03d}" if stage == "val" else stage
        paths = {
            key: plots.save_figure(fig, folder / f"{tag}_{key.split('/', 1)[1]}.png")
            for key, fig in figures.items()
        }
        log_image = getattr(trainer.logger, "log_image", None)
        if callable(log_image):
            for key, path in paths.items():
                log_image(key=key, images=[str(path)], step=trainer.global_step)


class CostReportWriter(pl.Callback):
    """At the start of ``test``: the network's cost at the DataModule's input size.

    Prints parameters, GFLOPs per clip, peak forward memory and clips/s, writes them to
    ``<run>/cost_report.json`` (atomically) and logs them as ``cost/*`` metrics. The network is
    ``pl_module.net``; the input size is the DataModule's ``num_frames`` and ``crop_size``.

    Args:
        enabled: measure and write the report.
    """

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled

    def on_test_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self.enabled or not trainer.is_global_zero:
            return
        dm = getattr(trainer, "datamodule", None)
        frames, size = getattr(dm, "num_frames", None), getattr(dm, "crop_size", None)
        net = getattr(pl_module, "net", None)
        if frames is None or size is None or not isinstance(net, torch.nn.Module):
            log.info("cost report skipped: no num_frames/crop_size on the DataModule or no net")
            return
        shape = (3, int(frames), int(size), int(size))
        report = measure_cost(net, shape, device=pl_module.device, iters=3, warmup=1)
        text = format_cost(report)
        log.info("cost of %s at %s:\n%s", type(net).__name__, "x".join(map(str, shape)), text)
        rank_zero_info(text)
        values = report.to_dict()
        atomic_write_text(
            RunLayout.for_reports(trainer).cost_report, json.dumps(values, indent=2, default=str)
        )
        if trainer.logger is not None:
            trainer.logger.log_metrics(
                {
                    f"cost/{k}": float(v)
                    for k, v in values.items()
                    if isinstance(v, int | float) and not isinstance(v, bool)
                },
                step=trainer.global_step,
            )


LEARNING_CURVE_COLUMNS: tuple[str, ...] = (
    "epoch",
    "step",
    "lr",
    "train_loss",
    "val_loss",
    "val_war",
    "val_uar",
    "best_val_uar",
)


def _scalar(value: Any) -> float:
    return float(value.item() if isinstance(value, Tensor) else value)


class LearningCurve(pl.Callback):
    """Make a ``fit`` readable: a line per epoch, a per-epoch CSV, a learning-curve PNG, a summary.

    At the end of every training epoch (its validation has run by then), on rank 0:

    * one console line, e.g.
      ``epoch 3  val WAR 61.2%  val UAR 58.9%  train loss 1.234  (best so far)``; "best so far"
      means the highest ``val/uar`` yet (strictly higher than every earlier epoch's, the rule of
      the ``best.ckpt`` checkpoint);
    * ``learning_curve.csv`` next to the checkpoints (the ``dirpath`` of the trainer's checkpoint
      callback, ``<default_root_dir>/checkpoints`` by default; ``<default_root_dir>`` when
      checkpointing is off) with the columns
      :data:`LEARNING_CURVE_COLUMNS`, rewritten atomically, whatever the logger;
    * ``<run>/figures/learning_curve.png`` (loss, WAR and UAR per epoch, the best epoch marked).

    At the end of ``fit``: the best epoch and its metrics, the best checkpoint's path, the
    figures folder and the ``hdf test`` command that evaluates that checkpoint.

    The history is part of the callback's checkpointed state, so a resumed run continues the CSV
    and the picture instead of starting them again; so is the running train-loss sum of the epoch
    in progress, so an epoch resumed from a checkpoint taken inside it (SIGTERM) reports the mean
    over all its batches, as the uninterrupted run does. The train loss is the batch-size weighted
    mean of the loss ``training_step`` returns (the unweighted loss of the first SAM pass) on this
    rank; validation values are the logged ``val/loss``, ``val/war`` and ``val/uar`` (all ranks).
    Epochs are counted from 0, as in the progress bar and the validation figure names.

    Args:
        enabled: print, write and draw (False: do nothing).
    """

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.history: list[dict[str, float]] = []
        self._loss_sum = 0.0
        self._loss_count = 0
        self._loss_epoch = -1  # the epoch the running sum belongs to
        self._val: dict[str, float] | None = None

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        return {
            "history": [dict(row) for row in self.history],
            "epoch_loss": {
                "epoch": self._loss_epoch,
                "sum": self._loss_sum,
                "count": self._loss_count,
            },
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.history = [dict(row) for row in state_dict.get("history", [])]
        running = state_dict.get("epoch_loss")
        if isinstance(running, dict):
            self._loss_epoch = int(running["epoch"])
            self._loss_sum, self._loss_count = float(running["sum"]), int(running["count"])

    # ------------------------------------------------------------------ collecting
    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._val = None
        # a new epoch starts a new sum; the sum of a checkpoint taken inside this epoch (restored
        # by load_state_dict) goes on (Lightning does not call this hook when it resumes inside
        # an epoch, and an end-of-epoch checkpoint belongs to the previous epoch)
        if trainer.current_epoch != self._loss_epoch:
            self._loss_epoch, self._loss_sum, self._loss_count = trainer.current_epoch, 0.0, 0

    def on_train_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if loss is None:
            return
        value = _scalar(loss)
        size = _batch_size(batch)
        if math.isfinite(value):
            self._loss_sum += value * size
            self._loss_count += size

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        metrics = trainer.callback_metrics
        self._val = {
            key: _scalar(metrics[f"val/{key}"])
            for key in ("loss", "war", "uar")
            if f"val/{key}" in metrics
        }

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self.enabled:
            return
        # runs before the checkpoint callbacks (Lightning orders them last), so the row of this
        # epoch is in the state they save
        history = [row for row in self.history if row["epoch"] < trainer.current_epoch]
        val = self._val or {}
        nan = float("nan")
        previous_best = max(
            (row["val_uar"] for row in history if _known(row["val_uar"])), default=nan
        )
        uar = val.get("uar", nan)
        improved = _known(uar) and not (_known(previous_best) and uar <= previous_best)
        optimizers = trainer.optimizers
        row = {
            "epoch": float(trainer.current_epoch),
            "step": float(trainer.global_step),
            "lr": float(optimizers[0].param_groups[0]["lr"]) if optimizers else nan,
            "train_loss": self._loss_sum / self._loss_count if self._loss_count else nan,
            "val_loss": val.get("loss", nan),
            "val_war": val.get("war", nan),
            "val_uar": uar,
            "best_val_uar": uar if improved else previous_best,
        }
        self.history = [*history, row]
        if trainer.is_global_zero:
            rank_zero_info(_epoch_line(row, improved))
            self._write(trainer)

    def _write(self, trainer: pl.Trainer) -> None:
        atomic_write_text(_checkpoint_dir(trainer) / run_folder.LEARNING_CURVE_CSV, self.to_csv())
        columns = {key: [row[key] for row in self.history] for key in LEARNING_CURVE_COLUMNS}
        best = self.best()
        figure = plots.learning_curve_figure(
            [int(e) for e in columns["epoch"]],
            train_loss=columns["train_loss"],
            val_loss=columns["val_loss"],
            val_war=columns["val_war"],
            val_uar=columns["val_uar"],
            best_epoch=int(best["epoch"]) if best is not None else None,
        )
        figures = RunLayout.for_reports(trainer).figures
        plots.save_figure(figure, figures / run_folder.LEARNING_CURVE_PNG)

    # ------------------------------------------------------------------ results
    def to_csv(self) -> str:
        """The history as CSV text (header :data:`LEARNING_CURVE_COLUMNS`; empty cell = none)."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(LEARNING_CURVE_COLUMNS)
        for row in self.history:
            writer.writerow([_cell(key, row[key]) for key in LEARNING_CURVE_COLUMNS])
        return buffer.getvalue()

    def best(self) -> dict[str, float] | None:
        """The row of the first epoch with the highest ``val_uar``, or None without validation."""
        rows = [row for row in self.history if _known(row["val_uar"])]
        return max(rows, key=lambda row: row["val_uar"]) if rows else None

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self.enabled or not trainer.is_global_zero or not self.history:
            return
        best = self.best()
        lines = ["", "fit finished"]
        if best is None:
            lines.append("  no validation ran: no best epoch")
        else:
            lines.append(
                f"  best epoch    {int(best['epoch'])}: val WAR {100 * best['val_war']:.1f}%  "
                f"val UAR {100 * best['val_uar']:.1f}%  train loss {best['train_loss']:.4g}"
            )
        checkpoint = _best_checkpoint(trainer)
        if checkpoint:
            lines.append(f"  checkpoint    {checkpoint}")
        lines.append(f"  figures       {RunLayout.for_reports(trainer).figures}")
        lines.append(f"  metrics       {_checkpoint_dir(trainer) / run_folder.LEARNING_CURVE_CSV}")
        if checkpoint:
            config = _saved_config(trainer)
            config_arg = str(config) if config is not None else "<your config>"
            lines.append(f"  test it with  hdf test --config {config_arg} --ckpt_path {checkpoint}")
        rank_zero_info("\n".join(lines))


def _known(value: float) -> bool:
    return not math.isnan(value)


def _cell(key: str, value: float) -> str:
    if not _known(value):
        return ""
    return str(int(value)) if key in ("epoch", "step") else f"{value:.6g}"


def _batch_size(batch: Any) -> int:
    if isinstance(batch, dict) and isinstance(batch.get("label"), Tensor):
        return int(batch["label"].shape[0])
    return 1


def _epoch_line(row: dict[str, float], improved: bool) -> str:
    parts = [f"epoch {int(row['epoch'])}"]
    if _known(row["val_war"]):
        parts.append(f"val WAR {100 * row['val_war']:.1f}%")
    if _known(row["val_uar"]):
        parts.append(f"val UAR {100 * row['val_uar']:.1f}%")
    if _known(row["train_loss"]):
        parts.append(f"train loss {row['train_loss']:.4g}")
    if improved:
        parts.append("(best so far)")
    return "  ".join(parts)


def _checkpoint_dir(trainer: pl.Trainer) -> Path:
    """Where the checkpoints go: the trainer's (val/uar) checkpoint callback's folder; without
    checkpointing, ``default_root_dir`` itself (no empty ``checkpoints`` folder is made)."""
    callbacks = [c for c in trainer.checkpoint_callbacks if isinstance(c, ModelCheckpoint)]
    callbacks.sort(key=lambda c: c.monitor != "val/uar")
    for callback in callbacks:
        if callback.dirpath:
            return Path(callback.dirpath)
    return Path(trainer.default_root_dir)


def _best_checkpoint(trainer: pl.Trainer) -> str | None:
    for callback in trainer.checkpoint_callbacks:
        if isinstance(callback, ModelCheckpoint) and callback.monitor == "val/uar":
            path = callback.best_model_path
            return path if path and os.path.exists(path) else None
    return None


def _saved_config(trainer: pl.Trainer) -> Path | None:
    """The config the CLI saved for this run (``config.yaml`` in
    :meth:`~hdf_lightning.run_folder.RunLayout.for_reports`), if any."""
    for callback in trainer.callbacks:  # type: ignore[attr-defined]
        filename = getattr(callback, "config_filename", None)  # LightningCLI's SaveConfigCallback
        if isinstance(filename, str):
            path = RunLayout.for_reports(trainer).root / filename
            if path.is_file():
                return path
    return None


def state_digest(module: torch.nn.Module) -> str:
    """SHA-256 of all parameters (names, dtypes and exact bytes).

    Buffers are left out on purpose: without ``sync_batchnorm`` each rank's BatchNorm running
    statistics see only its own last batch (DDP broadcasts rank 0's at the next forward).
    """
    h = hashlib.sha256()
    for name, tensor in module.named_parameters():
        h.update(name.encode())
        t = tensor.detach().cpu().contiguous().reshape(-1)
        h.update(str(t.dtype).encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


class RankConsistencyCheck(pl.Callback):
    """Fail the run when the ranks of a distributed job end training with different weights."""

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        digest = state_digest(pl_module)
        digests: list[str] = [digest]
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            gathered: list[Any] = [None] * torch.distributed.get_world_size()
            torch.distributed.all_gather_object(gathered, digest)
            digests = [str(d) for d in gathered]
        if trainer.is_global_zero:
            out = RunLayout(trainer.default_root_dir).rank_digests
            atomic_write_text(out, json.dumps({"digests": digests}, indent=2))
        if len(set(digests)) != 1:
            raise RuntimeError(
                f"ranks ended training with different weights: {digests}. "
                "Gradient synchronisation or buffer broadcasting is broken."
            )


class EvalPredictionWriter(CollectedTestRows):
    """Keep every test prediction of this rank and save them at the end of the test epoch."""

    def test_row(
        self, pl_module: pl.LightningModule, outputs: Any, batch: Any
    ) -> dict[str, Tensor] | None:
        """The batch's dataset indices, labels, predicted classes ``(B,)`` and probabilities
        ``(B, K)``."""
        logits = outputs["logits"] if isinstance(outputs, dict) else pl_module(batch["video"])[0]
        probs = logits.float().softmax(-1).cpu()
        return {
            "index": batch["index"].cpu(),
            "label": batch["label"].cpu(),
            "pred": probs.argmax(-1),
            "probs": probs,
        }

    def on_test_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        merged = self.merged_rows()
        if merged is None:
            return
        predictions = RunLayout(trainer.default_root_dir).predictions
        out = predictions / f"test_rank{trainer.global_rank}.pt"
        with atomic_path(out) as tmp:
            torch.save(merged, tmp)
