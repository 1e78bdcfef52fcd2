"""HDFClassifier's training step against hand-written references: which g DSM sees (with and
without SAM, in fp32 and 16-mixed), the learning-rate schedule stepped once per step, logs and
metrics from the first SAM pass, and gradient clipping of the update."""

from __future__ import annotations

import copy
import math
from functools import partial
from typing import Any

import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from pytorch_lightning.plugins.precision import MixedPrecision
from torch import Tensor, nn

from hdf_lightning.lit import HDFClassifier
from hdf_lightning.losses import DSM, ClassificationLoss
from test_module import K, TinyNet, fit, make_batches

NAMES = ["a", "b", "c"]


class StepRecorder(pl.Callback):
    """After every training batch: the logged step values, the LR and the train confusion matrix."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any, **kwargs: Any
    ) -> None:
        metrics = trainer.callback_metrics
        assert isinstance(pl_module, HDFClassifier)
        self.rows.append(
            {
                "loss": float(metrics["train/loss_step"]),
                "grad_norm": float(metrics["train/grad_norm"]),
                "lr": float(pl_module.optimizers().param_groups[0]["lr"]),  # type: ignore[union-attr]
                "cm": pl_module.train_metrics.confusion_matrix.confmat.clone(),
            }
        )


def sgd_module(net: nn.Module, loss: nn.Module, *, lr: float, **kwargs: Any) -> HDFClassifier:
    """SGD at a constant LR unless ``kwargs`` say otherwise."""
    options: dict[str, Any] = {"warmup_epochs": 0, "min_lr": lr, **kwargs}
    return HDFClassifier(
        net,
        loss=loss,
        optimizer=partial(torch.optim.SGD, lr=lr),
        num_classes=K,
        class_names=NAMES,
        **options,
    )


def grad_norm_of(loss: Tensor, params: list[nn.Parameter], *, retain: bool = False) -> Tensor:
    grads = torch.autograd.grad(loss, params, retain_graph=retain)
    return torch.sqrt(sum((g.double() ** 2).sum() for g in grads)).float()


def fp16_plugin(scale: float) -> MixedPrecision:
    """Real fp16 autocast with a gradient scaler on the CPU (see docs/decisions.md)."""
    scaler = torch.amp.GradScaler("cpu", init_scale=scale)
    return MixedPrecision(precision="16-mixed", device="cpu", scaler=scaler)


# --------------------------------------------------------------------------- g without SAM
def test_without_sam_g_is_the_norm_of_the_unweighted_gradient_of_the_batch() -> None:
    """g = ‖∇(L_CE + L_SC)‖ of the current batch; the update uses λ(previous g)."""
    torch.manual_seed(4)
    net = TinyNet()
    ref = copy.deepcopy(net)
    batches = make_batches(3, seed=5)
    lr = 0.05
    dsm = DSM(label_smoothing=0.1)
    recorder = StepRecorder()
    module = sgd_module(net, dsm, lr=lr, sam=False)
    fit(module, batches, callbacks=[recorder])

    ref_loss = DSM(label_smoothing=0.1)
    params = list(ref.parameters())
    g_prev = torch.tensor(1.0)
    want_g, want_lambda_ce = [], []
    for batch in batches:
        logits, feature = ref(batch["video"])
        plain = ref_loss(logits, feature, batch["label"], weighted=False).loss
        g = grad_norm_of(plain, params, retain=True)
        weighted = ref_loss(logits, feature, batch["label"], weighted=True, grad_norm=g_prev)
        grads = torch.autograd.grad(weighted.loss, params)
        with torch.no_grad():
            for p, grad in zip(params, grads, strict=True):
                p.sub_(lr * grad)
        want_g.append(float(g))
        want_lambda_ce.append(float(weighted.parts["lambda_ce"]))
        g_prev = g

    got_g = [row["grad_norm"] for row in recorder.rows]
    assert got_g == pytest.approx(want_g, rel=1e-4)
    assert float(dsm.observed_grad_norm) == pytest.approx(want_g[-1], rel=1e-4)
    # the first update is weighted with g = 1 (λ_CE = 10·1/2), later ones with the previous g
    assert want_lambda_ce[0] == pytest.approx(5.0)
    for key, value in ref.state_dict().items():
        torch.testing.assert_close(module.net.state_dict()[key], value, rtol=1e-4, atol=1e-6)


def test_without_sam_g_differs_from_the_norm_of_the_weighted_gradient() -> None:
    """Guard for the test above: on its data the two definitions of g really differ."""
    torch.manual_seed(4)
    net = TinyNet()
    batch = make_batches(1, seed=5)[0]
    loss = DSM(label_smoothing=0.1)
    logits, feature = net(batch["video"])
    params = list(net.parameters())
    plain = grad_norm_of(
        loss(logits, feature, batch["label"], weighted=False).loss, params, retain=True
    )
    weighted = loss(logits, feature, batch["label"], weighted=True, grad_norm=1.0).loss
    assert abs(float(grad_norm_of(weighted, params)) - float(plain)) > 0.1 * float(plain)


# --------------------------------------------------------------------------- g under 16-mixed
@pytest.mark.parametrize("sam", [True, False], ids=["sam", "no_sam"])
def test_fp16_g_is_unscaled_and_matches_fp32(sam: bool) -> None:
    """A non-overflowing 16-mixed step must see the same g as fp32, not g × loss scale."""
    torch.manual_seed(6)
    net = TinyNet()
    batches = make_batches(1, seed=7)
    results = {}
    for name, plugins in (("fp32", []), ("fp16", [fp16_plugin(2.0**12)])):
        dsm = DSM(label_smoothing=0.1)
        recorder = StepRecorder()
        module = sgd_module(copy.deepcopy(net), dsm, lr=0.01, sam=sam)
        fit(module, batches, callbacks=[recorder], plugins=plugins)
        assert module.skipped_steps == 0
        results[name] = (recorder.rows[0]["grad_norm"], float(dsm.observed_grad_norm))
    g32, observed32 = results["fp32"]
    g16, observed16 = results["fp16"]
    assert 0.05 < g32 < 100  # a real norm, far from the scale
    assert g16 == pytest.approx(g32, rel=2e-2)
    assert observed16 == pytest.approx(observed32, rel=2e-2)


# --------------------------------------------------------------------------- LR schedule
@pytest.mark.parametrize("sam", [True, False], ids=["sam", "no_sam"])
def test_scheduler_is_stepped_exactly_once_per_training_step(sam: bool) -> None:
    """4 steps, warm-up 2 (from 0), cosine to min_lr: the LR after each step is the schedule's."""
    lr, min_lr = 0.1, 0.01
    recorder = StepRecorder()
    module = sgd_module(
        TinyNet(), ClassificationLoss(), lr=lr, sam=sam, warmup_epochs=0.5, min_lr=min_lr
    )
    fit(module, make_batches(4), callbacks=[recorder])

    def schedule(k: int) -> float:
        if k <= 2:
            return lr * k / 2
        return min_lr + (lr - min_lr) * (1 + math.cos(math.pi * (k - 2) / 2)) / 2

    assert [row["lr"] for row in recorder.rows] == pytest.approx(
        [schedule(k) for k in (1, 2, 3, 4)], abs=1e-12
    )
    assert module.lr_schedulers().last_epoch == 4  # type: ignore[union-attr]


# --------------------------------------------------------------------------- first SAM pass
def test_sam_logs_and_metrics_come_from_the_first_pass() -> None:
    torch.manual_seed(10)
    net = TinyNet()
    ref = copy.deepcopy(net)
    batch = make_batches(1, seed=9)[0]
    rho = 1.0  # a large perturbation, so the second pass predicts differently
    recorder = StepRecorder()
    module = sgd_module(
        net, ClassificationLoss(label_smoothing=0.0), lr=0.01, sam=True, sam_rho=rho
    )
    fit(module, [batch], callbacks=[recorder])

    x, y = batch["video"], batch["label"]
    params = list(ref.parameters())
    logits1, _ = ref(x)
    loss1 = F.cross_entropy(logits1, y)
    grads = torch.autograd.grad(loss1, params)
    g = torch.sqrt(sum((grad**2).sum() for grad in grads))
    with torch.no_grad():
        for p, grad in zip(params, grads, strict=True):
            p.add_(rho * grad / g)
        logits2, _ = ref(x)
        loss2 = F.cross_entropy(logits2, y)
    pred1, pred2 = logits1.argmax(1), logits2.argmax(1)
    assert not torch.equal(pred1, pred2)  # guard: the two passes predict differently
    assert abs(float(loss1) - float(loss2)) > 0.05  # guard: and have different losses

    row = recorder.rows[0]
    assert row["loss"] == pytest.approx(float(loss1), rel=1e-5)
    want_cm = torch.zeros(K, K, dtype=torch.long)
    for t, p in zip(y.tolist(), pred1.tolist(), strict=True):
        want_cm[t, p] += 1
    assert torch.equal(row["cm"], want_cm)


# --------------------------------------------------------------------------- gradient clipping
@pytest.mark.parametrize(
    ("sam", "scale"),
    [(False, None), (True, None), (True, 2.0**10)],
    ids=["no_sam", "sam", "sam_fp16"],
)
def test_grad_clip_norm_clips_the_unscaled_update(sam: bool, scale: float | None) -> None:
    """SGD with lr 1: the weight change is minus the clipped gradient, of norm the clip value."""
    torch.manual_seed(10)
    net = TinyNet()
    before = [p.detach().clone() for p in net.parameters()]
    clip = 1e-3
    plugins = [fp16_plugin(scale)] if scale is not None else []
    module = sgd_module(
        net, ClassificationLoss(label_smoothing=0.0), lr=1.0, sam=sam, grad_clip_norm=clip
    )
    recorder = StepRecorder()
    fit(module, make_batches(1, seed=11), callbacks=[recorder], plugins=plugins)
    assert module.skipped_steps == 0
    assert recorder.rows[0]["grad_norm"] > 100 * clip  # clipping had something to do
    step = torch.sqrt(
        sum(
            ((p.detach() - b) ** 2).sum()
            for p, b in zip(module.net.parameters(), before, strict=True)
        )
    )
    assert float(step) == pytest.approx(clip, rel=1e-3)


def test_without_grad_clip_norm_the_update_is_not_clipped() -> None:
    torch.manual_seed(10)
    net = TinyNet()
    before = [p.detach().clone() for p in net.parameters()]
    module = sgd_module(net, ClassificationLoss(label_smoothing=0.0), lr=1.0, sam=False)
    recorder = StepRecorder()
    fit(module, make_batches(1, seed=11), callbacks=[recorder])
    step = torch.sqrt(
        sum(
            ((p.detach() - b) ** 2).sum()
            for p, b in zip(module.net.parameters(), before, strict=True)
        )
    )
    assert float(step) == pytest.approx(recorder.rows[0]["grad_norm"], rel=1e-4)


def test_grad_clip_norm_must_be_positive() -> None:
    with pytest.raises(ValueError, match="grad_clip_norm must be > 0"):
        sgd_module(TinyNet(), ClassificationLoss(), lr=0.1, grad_clip_norm=0.0)
