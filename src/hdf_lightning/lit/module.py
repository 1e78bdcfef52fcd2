"""The LightningModule that wires a video network, a loss (DSM or CE) and SAM.

The module is thin orchestration: the network, the loss and the base optimizer are injected
(from YAML through ``class_path``), the two-pass SAM step lives in
:meth:`HDFClassifier.training_step`, and everything numerical is in :mod:`hdf_lightning.losses`,
:mod:`hdf_lightning.optim` and :mod:`hdf_lightning.evaluation`.

Why manual optimisation: SAM needs two forward/backward passes per step with a weight
perturbation in between, BatchNorm statistics frozen on the second pass, and the first pass's
gradient norm fed to DSM. Lightning's ``manual_backward`` keeps mixed precision (loss scaling) and
DDP gradient synchronisation working for both passes; the base optimizer is what Lightning sees,
so checkpoints, LR schedulers, ``global_step`` and the 16-bit gradient scaler behave exactly as
with any optimizer.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from pytorch_lightning.cli import OptimizerCallable
from pytorch_lightning.utilities import rank_zero_info
from torch import Tensor, nn

from hdf_lightning.losses import DSM, LossOutput
from hdf_lightning.optim import SAM, frozen_bn_stats, gradient_norm, warmup_cosine_schedule

log = logging.getLogger(__name__)

DFEW_CLASS_NAMES: tuple[str, ...] = (
    "happy",
    "sad",
    "neutral",
    "angry",
    "surprise",
    "disgust",
    "fear",
)


def sam_accumulation_error(accumulate_grad_batches: int) -> ValueError:
    """The error for SAM combined with gradient accumulation (refused: see the message)."""
    return ValueError(
        "SAM computes its perturbation from the gradient of one batch, so "
        f"accumulate_grad_batches={accumulate_grad_batches} cannot be combined with sam=true. "
        "Use a larger batch (or more devices) instead, or set --model.sam false."
    )


def default_optimizer(params: Any) -> torch.optim.Optimizer:
    """The METHOD.md §5 recipe: AdamW, lr 5e-4, weight decay 0.05, eps 1e-8."""
    return torch.optim.AdamW(params, lr=5e-4, weight_decay=0.05, eps=1e-8)


class HDFClassifier(pl.LightningModule):
    """Video expression classifier trained with an HDF loss (DSM) and optionally SAM.

    Args:
        net: a network with ``forward(x (B, 3, T, H, W)) -> (logits (B, K), feature (B, D))``,
            e.g. :class:`~hdf_lightning.models.HDFNet`.
        loss: a loss with the :class:`~hdf_lightning.losses.LossOutput` contract (``DSM`` or
            ``ClassificationLoss``); default ``DSM()`` with METHOD.md §3's values.
        optimizer: the base optimizer factory (``class_path`` in YAML); default AdamW as in
            METHOD.md §5.
        sam: wrap the base optimizer in SAM (two passes per step).
        sam_rho: SAM's neighbourhood radius ρ (0.05; ASAM ≈ 2.0).
        sam_adaptive: ASAM (scale-invariant perturbation).
        sam_sync_first_pass: under DDP, all-reduce the first pass's gradients (default). ``False``
            runs the first pass per device without gradient sync, as in the SAM paper.
        warmup_epochs: linear warm-up length in epochs (fractional allowed), stepped per iteration.
        min_lr: final learning rate of the cosine schedule.
        num_classes: number of classes (checked against the network's output).
        class_names: names in label order (DFEW order by default), used by logs and pictures.
        save_plots: write the confusion matrix and per-class recall PNGs after validation and test,
            and log them to the experiment logger.
        embedding_plot: also draw a PCA plot of the test features, coloured by class.
        cost_report: at the start of ``test``, print and log the network's parameters, GFLOPs per
            clip, peak forward memory and clips/s at the DataModule's input size.
    """

    def __init__(
        self,
        net: nn.Module,
        loss: nn.Module | None = None,
        optimizer: OptimizerCallable = default_optimizer,
        *,
        sam: bool = True,
        sam_rho: float = 0.05,
        sam_adaptive: bool = False,
        sam_sync_first_pass: bool = True,
        warmup_epochs: float = 20.0,
        min_lr: float = 5e-6,
        num_classes: int = 7,
        class_names: Sequence[str] | None = None,
        save_plots: bool = True,
        embedding_plot: bool = False,
        cost_report: bool = True,
    ) -> None:
        super().__init__()
        if sam and sam_rho < 0:
            raise ValueError(f"sam_rho must be >= 0, got {sam_rho}")
        if warmup_epochs < 0:
            raise ValueError(f"warmup_epochs must be >= 0, got {warmup_epochs}")
        names = tuple(class_names) if class_names is not None else DFEW_CLASS_NAMES[:num_classes]
        if len(names) != num_classes:
            raise ValueError(
                f"class_names has {len(names)} entries but num_classes is {num_classes}: {names}"
            )
        self.save_hyperparameters(ignore=["net", "loss"])
        self.automatic_optimization = False
        self.net = net
        self.loss = loss if loss is not None else DSM()
        self.optimizer_factory = optimizer
        self.use_sam = sam
        self.sam_rho = sam_rho
        self.sam_adaptive = sam_adaptive
        self.sam_sync_first_pass = sam_sync_first_pass
        self.warmup_epochs = warmup_epochs
        self.min_lr = min_lr
        self.num_classes = num_classes
        self.class_names = names
        self.save_plots = save_plots
        self.embedding_plot = embedding_plot
        self.cost_report = cost_report
        self._sam: SAM | None = None
        self.skipped_steps = 0

        from hdf_lightning.evaluation import EvaluationMetrics

        self.train_metrics = EvaluationMetrics(num_classes, names)
        self.val_metrics = EvaluationMetrics(num_classes, names)
        self.test_metrics = EvaluationMetrics(num_classes, names)
        self._test_features: list[Tensor] = []
        self._test_labels: list[Tensor] = []

    # ------------------------------------------------------------------ forward
    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(B, 3, T, H, W) clips -> (logits (B, K), feature (B, D))."""
        out = self.net(x)
        if not isinstance(out, tuple) or len(out) != 2:
            raise TypeError(
                "the network must return (logits, feature); "
                f"{type(self.net).__name__} returned {type(out).__name__}"
            )
        logits, feature = out
        if logits.shape[-1] != self.num_classes:
            raise ValueError(
                f"the network outputs {logits.shape[-1]} classes but num_classes is "
                f"{self.num_classes}"
            )
        return logits, feature

    # ------------------------------------------------------------------ optimisation
    def configure_optimizers(self) -> Any:
        if self.use_sam:
            self._sam = SAM(
                self.net.parameters(),
                self.optimizer_factory,
                rho=self.sam_rho,
                adaptive=self.sam_adaptive,
            )
            base = self._sam.base_optimizer  # Lightning steps (and checkpoints) the base optimizer
        else:
            base = self.optimizer_factory(self.net.parameters())
        total = int(self.trainer.estimated_stepping_batches)
        epochs = max(int(self.trainer.max_epochs or 1), 1)
        if self.trainer.max_epochs is None or self.trainer.max_epochs < 0:
            steps_per_epoch = total
        else:
            steps_per_epoch = max(math.ceil(total / epochs), 1)
        warmup = min(round(self.warmup_epochs * steps_per_epoch), max(total - 1, 0))
        scheduler = warmup_cosine_schedule(
            base, warmup_steps=warmup, total_steps=max(total, 1), min_lr=self.min_lr
        )
        return {"optimizer": base, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def _grad_scale(self) -> float:
        scaler = getattr(self.trainer.precision_plugin, "scaler", None)
        return float(scaler.get_scale()) if scaler is not None else 1.0

    @contextlib.contextmanager
    def _first_pass_sync(self) -> Iterator[None]:
        strategy = self.trainer.strategy
        if not self.sam_sync_first_pass and hasattr(strategy, "block_backward_sync"):
            with strategy.block_backward_sync():
                yield
        else:
            yield

    def _loss(
        self, logits: Tensor, feature: Tensor, labels: Tensor, *, weighted: bool, g: Tensor | None
    ) -> LossOutput:
        out = self.loss(logits, feature, labels, weighted=weighted, grad_norm=g)
        if not isinstance(out, LossOutput):
            raise TypeError(f"the loss must return a LossOutput, got {type(out).__name__}")
        return out

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        x, y = batch["video"], batch["label"]
        opt = self.optimizers()
        scheduler = self.lr_schedulers()
        if isinstance(opt, list) or scheduler is None or isinstance(scheduler, list):
            raise RuntimeError("HDFClassifier expects exactly one optimizer and one scheduler")

        # First pass: metrics, logs and the gradient norm g come from here only.
        logits, feature = self(x)
        first = self._loss(logits, feature, y, weighted=not self.use_sam, g=None)
        parts = dict(first.parts)
        with self._first_pass_sync():
            self.manual_backward(first.loss)
        scale = self._grad_scale()

        if self._sam is not None:
            g = self._sam.first_step() / scale  # SAM's perturbation is scale-invariant; g is not
        else:
            g = gradient_norm(self.net.parameters()) / scale
        g = g.detach()
        finite = bool(torch.isfinite(g))
        if not finite and scale == 1.0:
            raise FloatingPointError(
                f"non-finite gradient norm ({g.item()}) at step {self.global_step} "
                f"(loss {first.loss.item():.4g}); training diverged. Lower the learning rate or "
                "sam_rho, or check the input data."
            )
        if finite:
            observe = getattr(self.loss, "observe_grad_norm", None)
            if callable(observe):
                observe(g)
            if self._sam is not None:
                # Second pass at w + e; its gradient (at the perturbed weights) updates w.
                opt.zero_grad()
                with frozen_bn_stats(self.net):
                    logits2, feature2 = self(x)
                    second = self._loss(logits2, feature2, y, weighted=True, g=g)
                    self.manual_backward(second.loss)
                self._sam.restore()
                self.log("train/loss_perturbed", second.loss.detach(), on_step=True, on_epoch=False)
                # the weights the update applied (the first pass is the unweighted sum)
                parts.update({k: v for k, v in second.parts.items() if k.startswith("lambda_")})
        else:
            # 16-mixed overflow: the scaler skips the step below and lowers the scale.
            self.skipped_steps += 1
            log.warning("non-finite gradients at step %d: step skipped", self.global_step)
        opt.step()
        opt.zero_grad()
        scheduler.step()

        bs = y.shape[0]
        self.train_metrics.update(logits.detach(), y)
        self.log("train/loss", first.loss.detach(), on_step=True, on_epoch=True, batch_size=bs)
        for name, value in parts.items():
            self.log(f"train/{name}", value, on_step=True, on_epoch=False, batch_size=bs)
        self.log("train/grad_norm", g, on_step=True, on_epoch=False, batch_size=bs)
        self.log("train/lr", opt.param_groups[0]["lr"], on_step=True, on_epoch=False, batch_size=bs)
        self.log("train/skipped_steps", float(self.skipped_steps), on_step=True, on_epoch=False)
        return first.loss.detach()

    def on_train_epoch_end(self) -> None:
        values = self.train_metrics.compute()
        self.log("train/war", values["war"], sync_dist=False)
        self.log("train/uar", values["uar"], sync_dist=False)
        self.train_metrics.reset()

    # ------------------------------------------------------------------ evaluation
    def _eval_step(self, batch: dict[str, Tensor], stage: str) -> dict[str, Tensor]:
        x, y = batch["video"], batch["label"]
        if x.ndim == 6:  # (B, V, 3, T, H, W): average the logits of V temporal views
            b, v = x.shape[:2]
            logits, feature = self(x.flatten(0, 1))
            logits = logits.view(b, v, -1).mean(1)
            feature = feature.view(b, v, -1).mean(1)
        else:
            logits, feature = self(x)
        loss = F.cross_entropy(logits.float(), y)
        metrics = self.val_metrics if stage == "val" else self.test_metrics
        metrics.update(logits.detach(), y)
        self.log(f"{stage}/loss", loss, on_epoch=True, sync_dist=True, batch_size=y.shape[0])
        if stage == "test" and self.embedding_plot:
            self._test_features.append(feature.detach().float().cpu())
            self._test_labels.append(y.detach().cpu())
        return {"loss": loss, "logits": logits.detach()}

    def on_test_start(self) -> None:
        if self.cost_report and self.trainer.is_global_zero:
            self._report_cost()

    def _report_cost(self) -> None:
        from hdf_lightning.evaluation.cost import format_cost, measure_cost

        dm = getattr(self.trainer, "datamodule", None)
        frames, size = getattr(dm, "num_frames", None), getattr(dm, "crop_size", None)
        if frames is None or size is None:
            log.info("cost report skipped: the DataModule has no num_frames/crop_size")
            return
        report = measure_cost(
            self.net, (3, int(frames), int(size), int(size)), device=self.device, iters=3, warmup=1
        )
        text = format_cost(report)
        log.info("cost of %s at 3x%dx%dx%d:\n%s", type(self.net).__name__, frames, size, size, text)
        rank_zero_info(text)
        path = self._run_dir() / "cost_report.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report.to_dict(), indent=2, default=str))
        if self.logger is not None:
            values = report.to_dict()
            self.logger.log_metrics(
                {
                    f"cost/{k}": float(v)
                    for k, v in values.items()
                    if isinstance(v, int | float) and not isinstance(v, bool)
                },
                step=self.global_step,
            )

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> dict[str, Tensor]:
        return self._eval_step(batch, "val")

    def test_step(self, batch: dict[str, Tensor], batch_idx: int) -> dict[str, Tensor]:
        return self._eval_step(batch, "test")

    def predict_step(self, batch: dict[str, Tensor], batch_idx: int) -> dict[str, Tensor]:
        logits, _ = self(batch["video"])
        probs = logits.float().softmax(-1)
        out = {"probs": probs, "pred": probs.argmax(-1)}
        if "index" in batch:
            out["index"] = batch["index"]
        return out

    def _finish_eval(self, stage: str) -> None:
        metrics = self.val_metrics if stage == "val" else self.test_metrics
        values = metrics.compute()  # synchronised over all ranks by torchmetrics
        metrics.reset()
        self.log(f"{stage}/war", values["war"])
        self.log(f"{stage}/uar", values["uar"])
        for name, recall in values["per_class_recall"].items():
            self.log(f"{stage}/recall_{name}", recall)
        if self.trainer.sanity_checking or not self.save_plots:
            return
        if self.trainer.is_global_zero:
            self._save_pictures(stage, values)

    def on_validation_epoch_end(self) -> None:
        self._finish_eval("val")

    def on_test_epoch_end(self) -> None:
        self._finish_eval("test")

    def _run_dir(self) -> Path:
        logger = self.logger
        for attr in ("log_dir", "save_dir"):
            value = getattr(logger, attr, None) if logger is not None else None
            if value:
                return Path(value)
        return Path(self.trainer.default_root_dir)

    def _save_pictures(self, stage: str, values: dict[str, Any]) -> None:
        from hdf_lightning.evaluation import plots

        folder = self._run_dir() / "figures"
        tag = f"{stage}_epoch{self.current_epoch:03d}" if stage == "val" else stage
        figures = {
            f"{stage}/confusion_matrix": plots.confusion_matrix_figure(
                values["confusion_matrix"].cpu(),
                self.class_names,
                title=f"{stage} confusion matrix (recall per true class)",
            ),
            f"{stage}/per_class_recall": plots.per_class_recall_figure(
                [float(v) for v in values["per_class_recall"].values()],
                self.class_names,
                title=f"{stage} per-class recall (UAR {float(values['uar']):.3f})",
            ),
        }
        if stage == "test" and self.embedding_plot and self._test_features:
            feats = torch.cat(self._test_features)
            labels = torch.cat(self._test_labels)
            figures["test/embedding"] = plots.embedding_figure(
                feats, labels, self.class_names, method="pca"
            )
            self._test_features.clear()
            self._test_labels.clear()
        paths = {}
        for key, fig in figures.items():
            name = key.split("/", 1)[1]
            paths[key] = plots.save_figure(fig, folder / f"{tag}_{name}.png")
        log_image = getattr(self.logger, "log_image", None)
        if callable(log_image):
            for key, path in paths.items():
                log_image(key=key, images=[str(path)], step=self.global_step)

    # ------------------------------------------------------------------ checkpoints
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # RNG state so that a resumed run follows the uninterrupted trajectory (dropout, sampling).
        checkpoint["hdf_rng_state"] = {"torch": torch.get_rng_state()}
        checkpoint["hdf_skipped_steps"] = self.skipped_steps

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint.get("hdf_rng_state")
        if state is not None:
            torch.set_rng_state(state["torch"])
        self.skipped_steps = int(checkpoint.get("hdf_skipped_steps", 0))
