"""Callbacks: everything a run writes to disk, kept out of the LightningModule.

The ``hdf`` CLI adds the first four by default:

* :class:`RunCheckpoint` / :func:`checkpoint_callbacks` — ``checkpoints/best.ckpt`` (highest
  ``val/uar``) and ``checkpoints/last.ckpt`` (every epoch) under ``trainer.default_root_dir``;
* :class:`EvaluationFigures` — the confusion matrix and per-class recall PNGs after each
  validation and test (and a PCA picture of the test features when asked), in ``<run>/figures``,
  also sent to a logger that takes images;
* :class:`CostReportWriter` — at the start of ``test``, parameters, GFLOPs per clip, peak memory
  and clips/s of the network at the DataModule's input size, printed and written to
  ``<run>/cost_report.json``.

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

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.utilities import rank_zero_info
from torch import Tensor

from hdf_lightning.checkpoints import module_nonfinite
from hdf_lightning.evaluation import plots
from hdf_lightning.evaluation.cost import format_cost, measure_cost
from hdf_lightning.io import atomic_path, atomic_write_text

log = logging.getLogger(__name__)


def run_dir(trainer: pl.Trainer) -> Path:
    """The folder of a run's figures and reports: the logger's ``log_dir`` (or ``save_dir``),
    else ``trainer.default_root_dir``."""
    logger = trainer.logger
    for attr in ("log_dir", "save_dir"):
        value = getattr(logger, attr, None) if logger is not None else None
        if value:
            return Path(value)
    return Path(trainer.default_root_dir)


class RunCheckpoint(ModelCheckpoint):
    """ModelCheckpoint that writes into ``<default_root_dir>/checkpoints`` unless told otherwise,
    and never writes (nor ranks as best) weights holding a NaN or an infinity."""

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if self.dirpath is None:
            self.dirpath = str(Path(trainer.default_root_dir) / "checkpoints")
        super().setup(trainer, pl_module, stage)

    def _should_skip_saving_checkpoint(self, trainer: pl.Trainer) -> bool:
        if super()._should_skip_saving_checkpoint(trainer):
            return True
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


class EvaluationFigures(pl.Callback):
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
        self.enabled = enabled
        self.embedding = embedding
        self._features: list[Tensor] = []
        self._labels: list[Tensor] = []

    def on_test_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._features.clear()
        self._labels.clear()

    def on_test_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if self.enabled and self.embedding and isinstance(outputs, dict) and "feature" in outputs:
            self._features.append(outputs["feature"].float().cpu())
            self._labels.append(batch["label"].detach().cpu())

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
        if stage == "test" and self.embedding and self._features:
            figures["test/embedding"] = plots.embedding_figure(
                torch.cat(self._features), torch.cat(self._labels), names, method="pca"
            )
        folder = run_dir(trainer) / "figures"
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
            run_dir(trainer) / "cost_report.json", json.dumps(values, indent=2, default=str)
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
            out = Path(trainer.default_root_dir) / "rank_digests.json"
            atomic_write_text(out, json.dumps({"digests": digests}, indent=2))
        if len(set(digests)) != 1:
            raise RuntimeError(
                f"ranks ended training with different weights: {digests}. "
                "Gradient synchronisation or buffer broadcasting is broken."
            )


class EvalPredictionWriter(pl.Callback):
    """Keep every test prediction of this rank and save them at the end of the test epoch."""

    def __init__(self) -> None:
        self._rows: list[dict[str, Tensor]] = []

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
        logits = outputs["logits"] if isinstance(outputs, dict) else pl_module(batch["video"])[0]
        probs = logits.float().softmax(-1).cpu()
        self._rows.append(
            {
                "index": batch["index"].cpu(),
                "label": batch["label"].cpu(),
                "pred": probs.argmax(-1),
                "probs": probs,
            }
        )

    def on_test_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self._rows:
            return
        merged = {k: torch.cat([r[k] for r in self._rows]) for k in self._rows[0]}
        out = Path(trainer.default_root_dir) / "predictions" / f"test_rank{trainer.global_rank}.pt"
        with atomic_path(out) as tmp:
            torch.save(merged, tmp)
