"""Tests of the SAM/ASAM optimizer and of BatchNorm freezing."""

from __future__ import annotations

import copy
import warnings
from functools import partial

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from hdf_lightning.optim import SAM, frozen_bn_stats, warmup_cosine_schedule


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
    model: nn.Module, base: torch.optim.Optimizer, x: Tensor, y: Tensor, rho: float, adaptive: bool
) -> Tensor:
    """Two-pass SAM written out by hand (Foret et al.; ASAM: Kwon et al.)."""
    _loss(model, x, y).backward()
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
    _loss(model, x, y).backward()
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


def test_rejects_negative_rho() -> None:
    with pytest.raises(ValueError, match="rho"):
        SAM(nn.Linear(2, 2).parameters(), partial(torch.optim.SGD, lr=0.1), rho=-0.1)
