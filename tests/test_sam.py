"""Tests of the SAM/ASAM optimizer and of BatchNorm freezing."""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable
from functools import partial

import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from hdf_lightning.losses import DSM
from hdf_lightning.optim import SAM, ClosureSAM, frozen_bn_stats, warmup_cosine_schedule


def _model(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    # no bias before the BatchNorm: its gradient would be rounding noise that AdamW amplifies
    return nn.Sequential(nn.Linear(4, 8, bias=False), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))


def _data(seed: int = 1) -> tuple[Tensor, Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(16, 4, generator=generator), torch.randint(0, 3, (16,), generator=generator)


def _loss(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    return F.cross_entropy(model(x), y)


def _sam_step(model: nn.Module, optimizer: SAM, x: Tensor, y: Tensor) -> Tensor:
    _loss(model, x, y).backward()
    g = optimizer.first_step(zero_grad=True)
    with frozen_bn_stats(model):
        _loss(model, x, y).backward()
    optimizer.second_step(zero_grad=True)
    return g


def _grad(p: Tensor) -> Tensor:
    assert p.grad is not None
    return p.grad


def _reference_sam_step(
    model: nn.Module,
    base: torch.optim.Optimizer,
    x: Tensor,
    y: Tensor,
    rho: float,
    adaptive: bool,
    loss_fn: Callable[[nn.Module, Tensor, Tensor], Tensor] = _loss,
) -> Tensor:
    """Two-pass SAM written out by hand (Foret et al.; ASAM: Kwon et al.)."""
    loss_fn(model, x, y).backward()
    params = [p for p in model.parameters() if p.grad is not None]
    scaled = [(p.abs() * _grad(p) if adaptive else _grad(p)) for p in params]
    g = torch.sqrt(torch.stack([(s**2).sum() for s in scaled]).sum())
    old = [p.detach().clone() for p in params]
    with torch.no_grad():
        for p in params:
            e = rho * _grad(p) / (g + 1e-12)
            p.add_(e * p**2 if adaptive else e)
    model.zero_grad()
    norms = [m for m in model.modules() if isinstance(m, _BatchNorm)]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.momentum = 0.0
    loss_fn(model, x, y).backward()
    for m, momentum in zip(norms, momenta, strict=True):
        m.momentum = momentum
    with torch.no_grad():
        for p, o in zip(params, old, strict=True):
            p.copy_(o)
    base.step()
    base.zero_grad()
    return g


def _assert_same_parameters(a: nn.Module, b: nn.Module) -> None:
    for (name, pa), pb in zip(a.named_parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(pa, pb, msg=f"parameter {name} differs")


def test_rho_zero_equals_one_base_step() -> None:
    x, y = _data()
    model, reference = _model(), _model()
    sam = SAM(model.parameters(), partial(torch.optim.AdamW, lr=1e-2), rho=0.0)
    base = torch.optim.AdamW(reference.parameters(), lr=1e-2)
    for _ in range(3):
        _sam_step(model, sam, x, y)
        _loss(reference, x, y).backward()
        base.step()
        base.zero_grad()
    _assert_same_parameters(model, reference)


@pytest.mark.parametrize(("adaptive", "rho"), [(False, 0.05), (True, 0.5)])
def test_matches_hand_written_two_pass_reference(adaptive: bool, rho: float) -> None:
    x, y = _data()
    model, reference, plain = _model(), _model(), _model()
    sam = SAM(
        model.parameters(),
        partial(torch.optim.AdamW, lr=1e-2, weight_decay=0.05),
        rho=rho,
        adaptive=adaptive,
    )
    base = torch.optim.AdamW(reference.parameters(), lr=1e-2, weight_decay=0.05)
    plain_optimizer = torch.optim.AdamW(plain.parameters(), lr=1e-2, weight_decay=0.05)
    for _ in range(3):
        g = _sam_step(model, sam, x, y)
        g_reference = _reference_sam_step(reference, base, x, y, rho, adaptive)
        torch.testing.assert_close(g, g_reference)
        assert sam.last_grad_norm is g
        _loss(plain, x, y).backward()
        plain_optimizer.step()
        plain_optimizer.zero_grad()
    _assert_same_parameters(model, reference)
    for bn, bn_reference in zip(model.modules(), reference.modules(), strict=True):
        if isinstance(bn, _BatchNorm):
            assert isinstance(bn_reference, _BatchNorm)
            torch.testing.assert_close(bn.running_mean, bn_reference.running_mean)
            torch.testing.assert_close(bn.running_var, bn_reference.running_var)
    # the perturbation matters: SAM is not the plain base optimizer
    differences = [
        (p - q).abs().max() for p, q in zip(model.parameters(), plain.parameters(), strict=True)
    ]
    assert max(differences) > 1e-6


def test_batchnorm_statistics_change_once_per_step() -> None:
    x, y = _data()
    model, single = _model(), _model()
    sam = SAM(model.parameters(), partial(torch.optim.SGD, lr=0.1), rho=0.05)
    _sam_step(model, sam, x, y)
    single(x)  # one forward pass in training mode at the same initial weights
    stats, stats_single = model[1].state_dict(), single[1].state_dict()
    for name in ("running_mean", "running_var", "num_batches_tracked"):
        assert torch.equal(stats[name], stats_single[name]), name
    assert int(stats["num_batches_tracked"]) == 1


def test_frozen_bn_stats_restores_after_an_exception() -> None:
    model = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.BatchNorm1d(6, momentum=None))
    model(torch.randn(8, 4))
    before = {k: v.clone() for k, v in model.state_dict().items() if not k.endswith("weight")}
    with pytest.raises(RuntimeError, match="boom"), frozen_bn_stats(model):
        assert model[1].momentum == 0.0
        model(torch.randn(8, 4) * 3 + 1)
        raise RuntimeError("boom")
    after = model.state_dict()
    for key, value in before.items():
        assert torch.equal(after[key], value), key
    assert model[1].momentum == 0.1 and model[2].momentum is None
    model(torch.randn(8, 4) * 3 + 1)  # statistics update again outside the context
    assert not torch.equal(model[1].running_mean, before["1.running_mean"])


def test_restore_gives_back_bitwise_identical_weights() -> None:
    x, y = _data()
    model = _model()
    sam = SAM(model.parameters(), partial(torch.optim.SGD, lr=0.1), rho=0.5, adaptive=True)
    before = [p.detach().clone() for p in model.parameters()]
    sam.restore()  # no-op when not perturbed
    assert all(torch.equal(p, b) for p, b in zip(model.parameters(), before, strict=True))
    _loss(model, x, y).backward()
    sam.first_step()
    assert sam.is_perturbed
    assert not all(torch.equal(p, b) for p, b in zip(model.parameters(), before, strict=True))
    sam.restore()
    assert not sam.is_perturbed
    assert all(torch.equal(p, b) for p, b in zip(model.parameters(), before, strict=True))


@pytest.mark.parametrize("bad", [float("inf"), float("nan")])
def test_non_finite_gradient_norm_does_not_perturb(bad: float) -> None:
    x, y = _data()
    model = _model()
    sam = SAM(model.parameters(), partial(torch.optim.SGD, lr=0.1))
    before = [p.detach().clone() for p in model.parameters()]
    _loss(model, x, y).backward()
    first = next(model.parameters())
    assert first.grad is not None
    first.grad[0, 0] = bad
    g = sam.first_step()
    assert not torch.isfinite(g)
    assert not sam.is_perturbed
    assert all(torch.equal(p, b) for p, b in zip(model.parameters(), before, strict=True))

    calls = []
    _loss(model, x, y).backward()
    first.grad[0, 0] = bad
    assert sam.step(lambda: calls.append(1)) is None  # the whole step is skipped
    assert not calls
    assert all(torch.equal(p, b) for p, b in zip(model.parameters(), before, strict=True))


def test_state_dict_round_trip_resumes_the_same_trajectory() -> None:
    x, y = _data()
    model = _model()
    sam = SAM(model.parameters(), partial(torch.optim.AdamW, lr=1e-2), rho=0.05)
    for _ in range(2):
        _sam_step(model, sam, x, y)
    state = copy.deepcopy(sam.state_dict())
    assert state["state"] and "exp_avg" in state["state"][0]  # the base optimizer's state
    assert state["param_groups"][0]["rho"] == 0.05
    resumed_model = copy.deepcopy(model)
    resumed = SAM(resumed_model.parameters(), partial(torch.optim.AdamW, lr=1e-2), rho=0.05)
    resumed.load_state_dict(state)
    assert resumed.param_groups is resumed.base_optimizer.param_groups
    assert resumed.state is resumed.base_optimizer.state
    for _ in range(2):
        _sam_step(model, sam, x, y)
        _sam_step(resumed_model, resumed, x, y)
    assert all(
        torch.equal(p, q)
        for p, q in zip(model.parameters(), resumed_model.parameters(), strict=True)
    )


def test_lr_scheduler_acts_on_the_shared_param_groups() -> None:
    x, y = _data()
    model = _model()
    sam = SAM(model.parameters(), partial(torch.optim.SGD, lr=0.1), rho=0.05)
    assert sam.param_groups is sam.base_optimizer.param_groups
    scheduler = warmup_cosine_schedule(sam, warmup_steps=2, total_steps=6, min_lr=0.01)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. "lr_scheduler.step() before optimizer.step()"
        for _ in range(4):
            lr = sam.base_optimizer.param_groups[0]["lr"]
            weight = model[0].get_parameter("weight")
            start = weight.detach().clone()
            _loss(model, x, y).backward()
            sam.first_step(zero_grad=True)
            with frozen_bn_stats(model):
                _loss(model, x, y).backward()
            assert weight.grad is not None
            expected = start - lr * weight.grad  # restored weights, SGD with this lr
            sam.second_step(zero_grad=True)
            torch.testing.assert_close(weight.detach(), expected)
            scheduler.step()
    assert sam.base_optimizer.param_groups[0]["lr"] == pytest.approx(
        0.01 + 0.09 * 0.5 * (1 + torch.cos(torch.tensor(torch.pi * 2 / 4)).item())
    )


def test_gradient_scaler_unscales_the_shared_gradients() -> None:
    x, y = _data()
    model, reference = _model(), _model()
    sam = SAM(model.parameters(), partial(torch.optim.SGD, lr=0.1))
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
    scaler.scale(_loss(model, x, y)).backward()
    scaler.unscale_(sam)
    _loss(reference, x, y).backward()
    for p, q in zip(model.parameters(), reference.parameters(), strict=True):
        assert p.grad is not None and q.grad is not None
        torch.testing.assert_close(p.grad, q.grad)


def test_step_with_closure_decreases_a_toy_loss() -> None:
    torch.manual_seed(0)
    x = torch.randn(64, 5)
    target = x @ torch.randn(5, 1) + 0.5
    model = nn.Linear(5, 1)
    sam = SAM(model.parameters(), partial(torch.optim.SGD, lr=0.05, momentum=0.9), rho=0.05)

    def closure() -> Tensor:
        loss = F.mse_loss(model(x), target)
        loss.backward()
        return loss

    initial = F.mse_loss(model(x), target).item()
    for _ in range(40):
        closure()
        second = sam.step(closure)
        assert isinstance(second, Tensor)
        sam.zero_grad()
    final = F.mse_loss(model(x), target).item()
    assert final < 0.05 * initial
    with pytest.raises(ValueError, match="closure"):
        sam.step()
    sam.zero_grad()  # gradients set to None: the first pass has not run
    with pytest.raises(ValueError, match="ClosureSAM"):
        sam.step(closure)


def test_plain_sam_in_lightning_automatic_optimisation_is_refused() -> None:
    # Lightning's closure runs the first pass: plain SAM would perturb along no or a stale gradient
    x, y = _data()

    class PlainSAMModule(_AutomaticModule):
        def configure_optimizers(self) -> SAM:
            return SAM(self.parameters(), partial(torch.optim.SGD, lr=0.1), rho=0.05)

    with pytest.raises(ValueError, match="use ClosureSAM"):
        _fit_one_step(PlainSAMModule(x, y, momentum=0.0), "32-true")


def test_rejects_negative_rho() -> None:
    with pytest.raises(ValueError, match="rho"):
        SAM(nn.Linear(2, 2).parameters(), partial(torch.optim.SGD, lr=0.1), rho=-0.1)


class _AutomaticModule(pl.LightningModule):
    """A user module in automatic optimisation that returns ClosureSAM from configure_optimizers."""

    def __init__(self, x: Tensor, y: Tensor, *, momentum: float) -> None:
        super().__init__()
        self.net = _model()
        self.dsm = DSM()  # only to receive g
        self.momentum = momentum
        self.x, self.y = x, y
        self.perturbed_in_step: list[bool] = []

    def training_step(self, batch: Tensor, batch_idx: int) -> Tensor:
        self.perturbed_in_step.append(bool(self.optimizers().is_perturbed))
        return _loss(self.net, self.x, self.y)

    def train_dataloader(self) -> list[Tensor]:
        return [torch.zeros(1)]

    def configure_optimizers(self) -> SAM:
        base = partial(torch.optim.SGD, lr=0.1, momentum=self.momentum)
        return ClosureSAM(
            self.parameters(), base, rho=0.05, model=self, on_grad_norm=self.dsm.observe_grad_norm
        )


def _fit_one_step(module: pl.LightningModule, precision: str) -> None:
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=1,
        max_steps=1,
        precision=precision,  # type: ignore[arg-type]
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # few-worker and single-batch warnings
        trainer.fit(module)


@pytest.mark.parametrize("precision", ["32-true", "bf16-mixed"])
def test_closure_sam_in_lightning_automatic_optimisation_is_one_sam_step(precision: str) -> None:
    x, y = _data()
    module = _AutomaticModule(x, y, momentum=0.9)
    reference = _model()
    _assert_same_parameters(module.net, reference)
    base = torch.optim.SGD(reference.parameters(), lr=0.1, momentum=0.9)

    def loss_fn(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        # one autocast region per forward, as Lightning's training_step (a region caches the
        # bf16 copies of the weights, which must not outlive the perturbation)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16-mixed"):
            return _loss(model, x, y)

    g = _reference_sam_step(reference, base, x, y, rho=0.05, adaptive=False, loss_fn=loss_fn)

    _fit_one_step(module, precision)

    assert module.perturbed_in_step == [False, True]  # training_step: at w, then at w + e
    _assert_same_parameters(module.net, reference)
    norm, reference_norm = module.net[1], reference[1]
    assert isinstance(norm, nn.BatchNorm1d) and isinstance(reference_norm, nn.BatchNorm1d)
    # BatchNorm statistics updated once, by the first pass
    torch.testing.assert_close(norm.running_mean, reference_norm.running_mean)
    torch.testing.assert_close(norm.running_var, reference_norm.running_var)
    assert int(norm.num_batches_tracked) == 1
    torch.testing.assert_close(module.dsm.observed_grad_norm, g)
    assert int(module.dsm.num_observed) == 1
    # and it is not a plain SGD step
    plain = _model()
    torch.optim.SGD(plain.parameters(), lr=0.1, momentum=0.9).zero_grad()
    _loss(plain, x, y).backward()
    torch.optim.SGD(plain.parameters(), lr=0.1).step()
    assert not torch.allclose(plain[0].weight, module.net[0].weight)


def test_closure_sam_step_calls_the_closure_twice_and_returns_the_first_loss() -> None:
    x, y = _data()
    model, reference = _model(), _model()
    sam = ClosureSAM(model.parameters(), partial(torch.optim.SGD, lr=0.1), rho=0.05, model=model)
    losses: list[float] = []

    def closure() -> Tensor:
        sam.zero_grad()
        loss = _loss(model, x, y)
        loss.backward()
        losses.append(loss.item())
        return loss

    returned = sam.step(closure)
    assert len(losses) == 2 and losses[1] > losses[0]  # the second pass is at the worst case
    assert returned.item() == losses[0]
    assert not sam.is_perturbed
    _reference_sam_step(
        reference, torch.optim.SGD(reference.parameters(), lr=0.1), x, y, rho=0.05, adaptive=False
    )
    _assert_same_parameters(model, reference)
    with pytest.raises(ValueError, match="bf16-mixed"):
        sam.step()


def test_closure_sam_restores_the_weights_when_the_second_pass_fails() -> None:
    x, y = _data()
    model = _model()
    before = copy.deepcopy(model)
    sam = ClosureSAM(model.parameters(), partial(torch.optim.SGD, lr=0.1), model=model)
    calls: list[int] = []

    def closure() -> Tensor:
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("out of memory")
        loss = _loss(model, x, y)
        loss.backward()
        return loss

    with pytest.raises(RuntimeError, match="out of memory"):
        sam.step(closure)
    assert not sam.is_perturbed
    for a, b in zip(model.parameters(), before.parameters(), strict=True):
        assert torch.equal(a, b)  # bitwise the weights before the step
