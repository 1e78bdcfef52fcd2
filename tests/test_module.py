"""HDFClassifier: the Lightning SAM step against a hand-written two-pass reference; guards."""

from __future__ import annotations

import copy
import math
from functools import partial

import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from hdf_lightning.lit import HDFClassifier
from hdf_lightning.losses import DSM, ClassificationLoss
from hdf_lightning.losses.dsm import dro_supcon_loss, dsm_lambdas, information_bottleneck

K = 3


class TinyNet(nn.Module):
    """(B, 3, T, H, W) -> (logits (B, K), feature (B, 6)); BatchNorm makes SAM's BN rule matter."""

    num_classes = K

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv3d(3, 6, 3, padding=1)
        self.bn = nn.BatchNorm3d(6)
        self.fc = nn.Linear(6, K)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        feature = F.relu(self.bn(self.conv(x))).mean(dim=(2, 3, 4))
        return self.fc(feature), feature


class FixedBatches(Dataset):
    def __init__(self, batches: list[dict[str, Tensor]]) -> None:
        self.batches = batches

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        return self.batches[i]


def make_batches(n: int, seed: int = 0) -> list[dict[str, Tensor]]:
    g = torch.Generator().manual_seed(seed)
    return [
        {
            "video": torch.randn(6, 3, 4, 8, 8, generator=g),
            "label": torch.tensor([0, 0, 1, 1, 2, 2]),
            "index": torch.arange(6),
        }
        for _ in range(n)
    ]


def fit(module: HDFClassifier, batches: list[dict[str, Tensor]], **trainer_kwargs: object) -> None:
    trainer = pl.Trainer(
        accelerator="cpu",
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        **trainer_kwargs,  # type: ignore[arg-type]
    )
    loader = DataLoader(FixedBatches(batches), batch_size=None, shuffle=False)
    trainer.fit(module, train_dataloaders=loader)


def reference_sam_steps(
    net: nn.Module, batches: list[dict[str, Tensor]], *, lr: float, rho: float, loss_fn
) -> None:
    """Plain two-pass SAM with SGD, written from docs/method.md §4 without the package's SAM."""
    params = [p for p in net.parameters()]
    for batch in batches:
        x, y = batch["video"], batch["label"]
        for p in params:
            p.grad = None
        logits, feature = net(x)
        loss_fn(logits, feature, y, None).backward()
        g = torch.sqrt(sum((p.grad**2).sum() for p in params))
        saved = [p.detach().clone() for p in params]
        with torch.no_grad():
            for p in params:
                p.add_(rho * p.grad / (g + 1e-12))
        for p in params:
            p.grad = None
        bn_state = {
            k: v.clone() for k, v in net.state_dict().items() if "running" in k or "tracked" in k
        }
        logits, feature = net(x)
        loss_fn(logits, feature, y, g).backward()
        with torch.no_grad():
            for p, w in zip(params, saved, strict=True):
                p.copy_(w)
            for p in params:
                p.sub_(lr * p.grad)
        net.load_state_dict({**net.state_dict(), **bn_state})


def test_lightning_sam_step_equals_hand_written_reference() -> None:
    torch.manual_seed(0)
    net = TinyNet()
    ref = copy.deepcopy(net)
    batches = make_batches(3)
    lr, rho = 0.1, 0.05
    module = HDFClassifier(
        net,
        loss=ClassificationLoss(label_smoothing=0.0),
        optimizer=partial(torch.optim.SGD, lr=lr),
        sam=True,
        sam_rho=rho,
        warmup_epochs=0,
        min_lr=lr,  # constant learning rate
        num_classes=K,
        class_names=["a", "b", "c"],
    )
    fit(module, batches)

    def ce(logits: Tensor, feature: Tensor, y: Tensor, g: Tensor | None) -> Tensor:
        return F.cross_entropy(logits, y)

    reference_sam_steps(ref, batches, lr=lr, rho=rho, loss_fn=ce)
    got, want = module.net.state_dict(), ref.state_dict()
    assert got.keys() == want.keys()
    for key in want:
        torch.testing.assert_close(got[key], want[key], rtol=1e-5, atol=1e-6, msg=key)
    # BN statistics moved (once per step): a guard against a test that compares two untouched nets
    assert int(got["bn.num_batches_tracked"]) == len(batches)


def test_dsm_second_pass_uses_first_pass_gradient_norm() -> None:
    torch.manual_seed(1)
    net = TinyNet()
    ref = copy.deepcopy(net)
    batches = make_batches(2, seed=3)
    lr, rho = 0.05, 0.05
    dsm = DSM(label_smoothing=0.1)
    module = HDFClassifier(
        net,
        loss=dsm,
        optimizer=partial(torch.optim.SGD, lr=lr),
        sam=True,
        sam_rho=rho,
        warmup_epochs=0,
        min_lr=lr,
        num_classes=K,
        class_names=["a", "b", "c"],
    )
    fit(module, batches)

    def dsm_ref(logits: Tensor, feature: Tensor, y: Tensor, g: Tensor | None) -> Tensor:
        ce = F.cross_entropy(logits, y, label_smoothing=0.1)
        z = F.normalize(feature, dim=1)
        sc = dro_supcon_loss(z, y, tau=0.07, eta=0.2) + 0.5 * information_bottleneck(z)
        if g is None:
            return ce + sc
        lam_ce, lam_sc = dsm_lambdas(g, 10.0, 0.1)
        return lam_ce * ce + lam_sc * sc

    reference_sam_steps(ref, batches, lr=lr, rho=rho, loss_fn=dsm_ref)
    for key, value in ref.state_dict().items():
        torch.testing.assert_close(
            module.net.state_dict()[key], value, rtol=1e-4, atol=1e-6, msg=key
        )


def test_without_sam_dsm_uses_previous_step_gradient_norm() -> None:
    torch.manual_seed(2)
    dsm = DSM()
    module = HDFClassifier(
        TinyNet(),
        loss=dsm,
        optimizer=partial(torch.optim.SGD, lr=0.01),
        sam=False,
        warmup_epochs=0,
        min_lr=0.01,
        num_classes=K,
        class_names=["a", "b", "c"],
    )
    fit(module, make_batches(2))
    # one observation per step, and the stored g is a real gradient norm (not the initial 1.0)
    assert int(dsm.num_observed) == 2
    observed = float(dsm.observed_grad_norm)
    assert math.isfinite(observed) and observed > 0 and observed != 1.0


def test_gradient_accumulation_is_refused_under_manual_optimisation() -> None:
    # a plain Trainer refuses it before any hook runs; the CLI gives the SAM-specific message
    # (tests/test_cli.py::test_cli_refuses_sam_with_gradient_accumulation)
    module = HDFClassifier(TinyNet(), num_classes=K, class_names=["a", "b", "c"], warmup_epochs=0)
    with pytest.raises(Exception, match="accumulate_grad_batches=2"):
        fit(module, make_batches(2), accumulate_grad_batches=2)


def test_class_names_must_match_num_classes() -> None:
    with pytest.raises(ValueError, match="class_names has 2 entries but num_classes is 3"):
        HDFClassifier(TinyNet(), num_classes=3, class_names=["a", "b"])


def test_network_class_count_is_checked() -> None:
    module = HDFClassifier(TinyNet(), num_classes=7)
    with pytest.raises(ValueError, match="outputs 3 classes but num_classes is 7"):
        module(torch.randn(2, 3, 4, 8, 8))


def test_fp16_overflow_skips_the_sam_step_and_lowers_the_scale() -> None:
    from pytorch_lightning.plugins.precision import MixedPrecision

    torch.manual_seed(3)
    net = TinyNet()
    before = copy.deepcopy(net.state_dict())
    module = HDFClassifier(
        net,
        loss=ClassificationLoss(label_smoothing=0.0),
        optimizer=partial(torch.optim.SGD, lr=0.1),
        sam=True,
        warmup_epochs=0,
        min_lr=0.1,
        num_classes=K,
        class_names=["a", "b", "c"],
    )
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**60)  # guarantees an fp16 overflow
    plugin = MixedPrecision(precision="16-mixed", device="cpu", scaler=scaler)
    fit(module, make_batches(1), plugins=[plugin])
    assert module.skipped_steps == 1
    assert scaler.get_scale() < 2.0**60
    after = module.net.state_dict()
    for key in ("conv.weight", "fc.weight", "bn.weight"):
        assert torch.equal(after[key], before[key]), key  # no step, no NaN written
