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
import copy
import logging
import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from pytorch_lightning.cli import OptimizerCallable
from pytorch_lightning.core.optimizer import LightningOptimizer
from pytorch_lightning.utilities import rank_zero_info
from torch import Tensor, nn
from torch.optim.lr_scheduler import LRScheduler

from hdf_lightning.checkpoints import module_nonfinite
from hdf_lightning.data.classes import CLASS_NAMES
from hdf_lightning.evaluation import EvaluationMetrics
from hdf_lightning.losses import DSM, LossOutput
from hdf_lightning.optim import SAM, frozen_bn_stats, gradient_norm, warmup_cosine_schedule

log = logging.getLogger(__name__)

STAGES: tuple[str, ...] = ("train", "val", "test")


def sam_accumulation_error(accumulate_grad_batches: int) -> ValueError:
    """The error for SAM combined with gradient accumulation (refused: see the message)."""
    return ValueError(
        "SAM computes its perturbation from the gradient of one batch, so "
        f"accumulate_grad_batches={accumulate_grad_batches} cannot be combined with sam=true. "
        "Use a larger batch (or more devices) instead, or set --model.sam false."
    )


def _loss_weights(out: LossOutput) -> dict[str, Tensor]:
    """The loss weights (``lambda_*`` parts) a weighted loss applied."""
    return {k: v for k, v in out.parts.items() if k.startswith("lambda_")}


def default_optimizer(params: Any) -> torch.optim.Optimizer:
    """The docs/method.md §5 recipe: AdamW, lr 5e-4, weight decay 0.05, eps 1e-8."""
    return torch.optim.AdamW(params, lr=5e-4, weight_decay=0.05, eps=1e-8)


class HDFClassifier(pl.LightningModule):
    """Video expression classifier trained with an HDF loss (DSM) and optionally SAM.

    The module keeps the forward pass, the (two-pass) optimisation step and the metrics; files
    (checkpoints, pictures, the cost report, the learning curve) are written by the callbacks of
    :mod:`hdf_lightning.callbacks`, which the ``hdf`` CLI adds by default.

    Args:
        net: a network with ``forward(x (B, 3, T, H, W)) -> (logits (B, K), feature (B, D))``,
            e.g. :class:`~hdf_lightning.models.HDFNet`.
        loss: a loss with the :class:`~hdf_lightning.losses.LossOutput` contract (``DSM`` or
            ``ClassificationLoss``); default ``DSM()`` with the method's values.
        optimizer: the base optimizer factory (``class_path`` in YAML); default AdamW, lr 5e-4,
            weight decay 0.05 (the training recipe of ``docs/method.md``).
        sam: wrap the base optimizer in SAM (two passes per step).
        sam_rho: SAM's neighbourhood radius ρ (0.05; ASAM ≈ 2.0).
        sam_adaptive: ASAM (scale-invariant perturbation).
        sam_sync_first_pass: under DDP, all-reduce the first pass's gradients (default). ``False``
            runs the first pass per device without gradient sync, as in the SAM paper.
        warmup_epochs: linear warm-up length in epochs (fractional allowed), stepped per iteration.
        min_lr: final learning rate of the cosine schedule.
        grad_clip_norm: clip the L2 norm of the gradient that updates the weights (the second
            pass's under SAM) to this value, after un-scaling under 16-bit precision. ``None``
            does not clip. (Lightning's ``gradient_clip_val`` does not apply to this module's
            manual optimisation.)
        num_classes: number of classes (checked against the network's output).
        class_names: names in label order (DFEW order by default), used by logs and pictures.

    Attributes:
        eval_results: the last ``EvaluationMetrics.compute()`` of each evaluation stage
            (``"val"``, ``"test"``), read by the figure callbacks.
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
        grad_clip_norm: float | None = None,
        num_classes: int = 7,
        class_names: Sequence[str] | None = None,
    ) -> None:
        super().__init__()
        if sam and sam_rho < 0:
            raise ValueError(f"sam_rho must be >= 0, got {sam_rho}")
        if warmup_epochs < 0:
            raise ValueError(f"warmup_epochs must be >= 0, got {warmup_epochs}")
        if grad_clip_norm is not None and not grad_clip_norm > 0:
            raise ValueError(f"grad_clip_norm must be > 0 or None, got {grad_clip_norm}")
        names = tuple(class_names) if class_names is not None else CLASS_NAMES[:num_classes]
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
        self.grad_clip_norm = grad_clip_norm
        self.num_classes = num_classes
        self.class_names = names
        self._sam: SAM | None = None
        self.skipped_steps = 0
        template = EvaluationMetrics(num_classes, names)
        for stage in STAGES:  # train_metrics, val_metrics, test_metrics: clones of one template
            setattr(self, f"{stage}_metrics", copy.deepcopy(template))
        self.eval_results: dict[str, dict[str, Any]] = {}

    def _metrics(self, stage: str) -> EvaluationMetrics:
        metrics = getattr(self, f"{stage}_metrics")
        assert isinstance(metrics, EvaluationMetrics)
        return metrics

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
        """One optimisation step; logs and metrics come from the first (unperturbed) pass.

        With SAM: pass 1 at w gives ``L_CE + L_SC`` and its gradient norm g; pass 2 at w + e
        minimises ``λ_CE(g)·L_CE + λ_SC(g)·L_SC`` and its gradient updates w. Without SAM the
        weighted loss uses the previous step's g, and this batch's g = ‖∇(L_CE + L_SC)‖ is
        measured by a backward pass of the unweighted sum before the weighted one (losses that
        have no weights, such as cross-entropy, take one backward pass).
        """
        x, y = batch["video"], batch["label"]
        opt, scheduler = self._optimizer_and_scheduler()
        logits, feature = self(x)
        unweighted = self._loss(logits, feature, y, weighted=False, g=None)
        parts = dict(unweighted.parts)
        scale = self._grad_scale()
        g, weights = self._first_backward(opt, logits, feature, y, unweighted, scale)
        parts.update(weights)
        if self._gradient_finite(g, unweighted.loss, scale):
            if self._sam is not None:
                parts.update(self._sam_second_pass(opt, x, y, g))
            observe = self._grad_norm_observer()
            if observe is not None:
                observe(g)
        opt.step()  # un-scales, calls on_before_optimizer_step (clipping), steps
        opt.zero_grad()
        scheduler.step()
        self._log_training_step(opt, logits, y, unweighted.loss, parts, g)
        return unweighted.loss.detach()

    def _optimizer_and_scheduler(self) -> tuple[LightningOptimizer, LRScheduler]:
        """The one optimizer (Lightning's wrapper of the base optimizer) and its scheduler."""
        opt = self.optimizers()
        scheduler = self.lr_schedulers()
        if isinstance(opt, list) or scheduler is None or isinstance(scheduler, list):
            raise RuntimeError("HDFClassifier expects exactly one optimizer and one scheduler")
        return opt, scheduler

    def _grad_norm_observer(self) -> Callable[[Tensor], Any] | None:
        """The loss's ``observe_grad_norm`` (DSM's weights follow the last g), or None."""
        observe = getattr(self.loss, "observe_grad_norm", None)
        return observe if callable(observe) else None

    def _first_backward(
        self,
        opt: LightningOptimizer,
        logits: Tensor,
        feature: Tensor,
        labels: Tensor,
        unweighted: LossOutput,
        scale: float,
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """The backward pass(es) at w: the gradient norm g (un-scaled, detached) of the
        unweighted loss, and the loss weights ``lambda_*`` the gradients now hold (none under
        SAM, whose update comes from :meth:`_sam_second_pass`)."""
        if self._sam is not None:
            with self._first_pass_sync():
                self.manual_backward(unweighted.loss)
            g = (self._sam.first_step() / scale).detach()  # e is scale-invariant; g is not
            return g, {}
        if self._grad_norm_observer() is None:
            self.manual_backward(unweighted.loss)
            return (gradient_norm(self.net.parameters()) / scale).detach(), {}
        # g of this batch from the unweighted sum, then the update from the weighted loss
        # (the weights come from the previous step's g, see DSM.observe_grad_norm).
        weighted = self._loss(logits, feature, labels, weighted=True, g=None)
        self.manual_backward(unweighted.loss, retain_graph=True)
        g = (gradient_norm(self.net.parameters()) / scale).detach()
        opt.zero_grad()
        self.manual_backward(weighted.loss)
        return g, _loss_weights(weighted)

    def _gradient_finite(self, g: Tensor, loss: Tensor, scale: float) -> bool:
        """Whether the gradient norm g is finite. In full precision a non-finite g raises; under
        16-bit loss scaling it is an overflow: the step is counted as skipped (the scaler skips
        it and lowers the scale).

        Raises:
            FloatingPointError: g is not finite and no loss scaling explains it (diverged).
        """
        finite = bool(torch.isfinite(g))
        if not finite and scale == 1.0:
            raise FloatingPointError(
                f"non-finite gradient norm ({g.item()}) at step {self.global_step} "
                f"(loss {loss.item():.4g}); training diverged. Lower the learning "
                "rate or sam_rho, or check the input data."
            )
        if not finite:
            self.skipped_steps += 1
            log.warning("non-finite gradients at step %d: step skipped", self.global_step)
        return finite

    def _sam_second_pass(
        self, opt: LightningOptimizer, x: Tensor, labels: Tensor, g: Tensor
    ) -> dict[str, Tensor]:
        """SAM's second pass at w + e, BatchNorm statistics frozen: its gradient (at the
        perturbed weights) is left to update w, and w is restored. Returns the loss weights
        ``lambda_*`` the update applied (the first pass is the unweighted sum)."""
        assert self._sam is not None
        opt.zero_grad()
        with frozen_bn_stats(self.net):
            logits, feature = self(x)
            second = self._loss(logits, feature, labels, weighted=True, g=g)
            self.manual_backward(second.loss)
        self._sam.restore()
        self.log("train/loss_perturbed", second.loss.detach(), on_step=True, on_epoch=False)
        return _loss_weights(second)

    def _log_training_step(
        self,
        opt: LightningOptimizer,
        logits: Tensor,
        labels: Tensor,
        loss: Tensor,
        parts: dict[str, Tensor],
        g: Tensor,
    ) -> None:
        """Train metrics and logs of the first pass: loss, its parts and the loss weights,
        gradient norm, learning rate and the count of skipped steps."""
        bs = labels.shape[0]
        self._metrics("train").update(logits.detach(), labels)
        self.log(
            "train/loss", loss.detach(), on_step=True, on_epoch=True, batch_size=bs, prog_bar=True
        )
        for name, value in parts.items():
            self.log(f"train/{name}", value, on_step=True, on_epoch=False, batch_size=bs)
        self.log("train/grad_norm", g, on_step=True, on_epoch=False, batch_size=bs)
        self.log("train/lr", opt.param_groups[0]["lr"], on_step=True, on_epoch=False, batch_size=bs)
        self.log("train/skipped_steps", float(self.skipped_steps), on_step=True, on_epoch=False)

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        """Clip the update's gradient norm (``grad_clip_norm``); gradients are un-scaled here."""
        if self.grad_clip_norm is not None:
            torch.nn.utils.clip_grad_norm_(self.net.parameters(), self.grad_clip_norm)

    def on_fit_start(self) -> None:
        """Print what the network's pretrained ``weights`` loaded (tensors loaded, skipped, kept
        at init), when it loaded any."""
        report = getattr(self.net, "load_report", None)
        if report is not None:
            rank_zero_info(f"{type(self.net).__name__} weights: {report.summary()}")

    def on_train_end(self) -> None:
        """A fit never ends quietly on weights holding a NaN or an infinity.

        The per-step gradient-norm check catches most divergences, but weights or BatchNorm
        statistics can turn non-finite while the last gradient norm was still finite (a one-epoch
        fit with a far too high learning rate). The checkpoint callbacks refuse to save such
        weights; this raises so that the fit fails (``hdf`` exits with 2) instead of reporting a
        best epoch computed on them.

        Raises:
            FloatingPointError: a parameter or buffer is not finite; names the first one.
        """
        bad = module_nonfinite(self)
        if bad is not None:
            raise FloatingPointError(
                f"training diverged: the weights hold NaN or inf at the end of the fit (first: "
                f"'{bad}', step {self.global_step}); no checkpoint was written from non-finite "
                "weights. Lower the learning rate or sam_rho, or check the input data."
            )

    def on_train_epoch_end(self) -> None:
        values = self._metrics("train").compute()
        self.log("train/war", values["war"], sync_dist=False)
        self.log("train/uar", values["uar"], sync_dist=False)
        self._metrics("train").reset()

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
        self._metrics(stage).update(logits.detach(), y)
        self.log(f"{stage}/loss", loss, on_epoch=True, sync_dist=True, batch_size=y.shape[0])
        return {"loss": loss, "logits": logits.detach(), "feature": feature.detach()}

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> dict[str, Tensor]:
        return self._eval_step(batch, "val")

    def test_step(self, batch: dict[str, Tensor], batch_idx: int) -> dict[str, Tensor]:
        return self._eval_step(batch, "test")

    def _finish_eval(self, stage: str) -> None:
        metrics = self._metrics(stage)
        values = metrics.compute()  # synchronised over all ranks by torchmetrics
        metrics.reset()
        prog_bar = stage == "val"
        self.log(f"{stage}/war", values["war"], prog_bar=prog_bar)
        self.log(f"{stage}/uar", values["uar"], prog_bar=prog_bar)
        for name, recall in values["per_class_recall"].items():
            self.log(f"{stage}/recall_{name}", recall)
        self.eval_results[stage] = values

    def on_validation_epoch_end(self) -> None:
        self._finish_eval("val")

    def on_test_epoch_end(self) -> None:
        self._finish_eval("test")

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
