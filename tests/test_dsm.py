"""Tests of the DSM loss, its parts and the cross-entropy baseline."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from hdf_lightning.losses import (
    DSM,
    ClassificationLoss,
    LossOutput,
    dro_supcon_loss,
    dro_weights,
    dsm_lambdas,
    information_bottleneck,
)
from hdf_lightning.losses import dsm as dsm_module

PART_NAMES = {"ce", "sc", "dsc", "ib", "lambda_ce", "lambda_sc", "grad_norm"}


def _batch(
    n: int = 8, d: int = 5, k: int = 3, seed: int = 0, dtype: torch.dtype = torch.float32
) -> tuple[Tensor, Tensor, Tensor]:
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, k, generator=generator, dtype=dtype)
    feature = torch.randn(n, d, generator=generator, dtype=dtype)
    labels = torch.arange(n) % k
    return logits, feature, labels


def _reference_dsc(
    z: Tensor, labels: Tensor, tau: float, eta: float, weight_positives: bool
) -> Tensor:
    """L_DSC written from the formula with Python loops over anchors, positives and candidates."""
    n = z.shape[0]
    cos = z @ z.T
    terms = []
    for i in range(n):
        others = [j for j in range(n) if j != i]
        raw = {j: math.exp(-((cos[i, j].item() - eta) ** 2) / (2 * eta**2)) for j in others}
        mean_raw = sum(raw.values()) / len(others)
        weight = {j: raw[j] / mean_raw for j in others}
        positives = [p for p in others if labels[p] == labels[i]]
        if not weight_positives:
            for p in positives:
                weight[p] = 1.0
        if not positives:
            continue
        denominator = torch.stack([weight[a] * torch.exp(cos[i, a] / tau) for a in others]).sum()
        total = torch.stack([cos[i, p] / tau - torch.log(denominator) for p in positives])
        terms.append(-total.sum() / len(positives))
    if not terms:
        return z.sum() * 0
    return torch.stack(terms).mean()


# ---------------------------------------------------------------------------- DRO weights


def test_dro_weights_rows_have_mean_one_off_diagonal() -> None:
    z = F.normalize(torch.randn(7, 4, generator=torch.Generator().manual_seed(1)), dim=1)
    cos = (z @ z.T).requires_grad_()
    w = dro_weights(cos, eta=0.2)
    off_diagonal = ~torch.eye(7, dtype=torch.bool)
    assert not w.requires_grad  # constants of the loss
    assert torch.all(w.diagonal() == 0)
    assert torch.all(w[off_diagonal] > 0)
    torch.testing.assert_close(w.sum(dim=1) / 6, torch.ones(7))
    # the weight is largest where the similarity is closest to eta
    row = cos[0].detach().clone()
    row[0] = math.inf
    assert int(w[0].argmax()) == int((row - 0.2).abs().argmin())


def test_dro_weights_do_not_underflow_for_small_eta() -> None:
    cos = torch.tensor([[1.0, -1.0, 0.9], [-1.0, 1.0, -0.8], [0.9, -0.8, 1.0]])
    w = dro_weights(cos, eta=0.01)  # raw Gaussian weights are exp(-5000) or smaller
    assert torch.isfinite(w).all()
    torch.testing.assert_close(w.sum(dim=1), torch.full((3,), 2.0))


def test_dro_weights_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="eta"):
        dro_weights(torch.eye(3), eta=0.0)
    with pytest.raises(ValueError, match="square"):
        dro_weights(torch.ones(2, 3))


# ---------------------------------------------------------------------------- D-SC


@pytest.mark.parametrize("weight_positives", [True, False])
def test_dro_supcon_matches_loop_reference(weight_positives: bool) -> None:
    generator = torch.Generator().manual_seed(3)
    feature = torch.randn(9, 6, generator=generator, dtype=torch.float64)
    labels = torch.tensor([0, 0, 1, 1, 1, 2, 3, 3, 4])  # classes 2 and 4 have no positive
    feature_a = feature.clone().requires_grad_()
    feature_b = feature.clone().requires_grad_()
    ours = dro_supcon_loss(F.normalize(feature_a, dim=1), labels, 0.07, 0.2, weight_positives)
    reference = _reference_dsc(F.normalize(feature_b, dim=1), labels, 0.07, 0.2, weight_positives)
    torch.testing.assert_close(ours, reference)
    ours.backward()
    reference.backward()
    assert feature_a.grad is not None and feature_b.grad is not None
    torch.testing.assert_close(feature_a.grad, feature_b.grad)


def test_contrastive_term_is_not_zero_on_random_features() -> None:
    _, feature, labels = _batch(n=16, d=8, k=4, seed=5)
    dsc = dro_supcon_loss(F.normalize(feature, dim=1), labels)
    assert abs(float(dsc)) > 1e-2
    out = DSM()(torch.randn(16, 4), feature, labels)
    assert abs(float(out.parts["dsc"])) > 1e-2


def test_supcon_is_non_negative_without_positive_weights() -> None:
    generator = torch.Generator().manual_seed(7)
    for trial in range(20):
        spread = 0.01 if trial % 2 else 1.0  # near-collapsed and spread-out features
        base = torch.randn(1, 8, generator=generator)
        feature = base + spread * torch.randn(12, 8, generator=generator)
        labels = torch.randint(0, 3, (12,), generator=generator)
        z = F.normalize(feature, dim=1)
        assert float(dro_supcon_loss(z, labels, weight_positives=False)) >= 0.0


def test_supcon_without_positives_is_zero_and_connected() -> None:
    feature = torch.randn(5, 4, requires_grad=True)
    loss = dro_supcon_loss(F.normalize(feature, dim=1), torch.arange(5))
    assert loss.item() == 0.0
    assert loss.requires_grad
    loss.backward()
    assert feature.grad is not None
    assert torch.all(feature.grad == 0)


# ---------------------------------------------------------------------------- IB


def test_information_bottleneck_is_trace_of_unbiased_covariance() -> None:
    z = torch.randn(6, 4, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    torch.testing.assert_close(information_bottleneck(z), torch.trace(torch.cov(z.T)))
    single = torch.randn(1, 4, requires_grad=True)
    ib = information_bottleneck(single)
    assert ib.item() == 0.0 and ib.requires_grad


# ---------------------------------------------------------------------------- λ's


@pytest.mark.parametrize(
    ("g", "lambda_ce", "lambda_sc"),
    [
        (0.0, 0.0, 0.1),
        (0.25, 2.0, 0.08),
        (1.0, 5.0, 0.05),
        (3.0, 7.5, 0.025),
        (9.0, 9.0, 0.01),
        (math.inf, 10.0, 0.0),
    ],
)
def test_dsm_lambdas_table(g: float, lambda_ce: float, lambda_sc: float) -> None:
    got_ce, got_sc = dsm_lambdas(g, alpha=10.0, beta=0.1)
    assert got_ce.dtype == torch.float32 and not got_ce.requires_grad
    torch.testing.assert_close(got_ce, torch.tensor(lambda_ce))
    torch.testing.assert_close(got_sc, torch.tensor(lambda_sc))
    # the same values through DSM.forward with an explicit grad_norm
    logits, feature, labels = _batch()
    out = DSM()(logits, feature, labels, grad_norm=torch.tensor(g))
    torch.testing.assert_close(out.parts["lambda_ce"], torch.tensor(lambda_ce))
    torch.testing.assert_close(out.parts["lambda_sc"], torch.tensor(lambda_sc))
    expected = lambda_ce * out.parts["ce"] + lambda_sc * out.parts["sc"]
    torch.testing.assert_close(out.loss.detach(), expected)


def test_dsm_lambdas_rejects_negative_g() -> None:
    with pytest.raises(ValueError, match="g >= 0"):
        dsm_lambdas(-1.0)


def test_fixed_weights_ignore_the_gradient_norm() -> None:
    logits, feature, labels = _batch()
    loss = DSM(fixed_weights=(10.0, 0.1))
    for g in (0.1, 1.0, 50.0):
        out = loss(logits, feature, labels, grad_norm=g)
        assert float(out.parts["lambda_ce"]) == 10.0
        assert float(out.parts["lambda_sc"]) == pytest.approx(0.1)
        torch.testing.assert_close(
            out.loss.detach(), 10.0 * out.parts["ce"] + 0.1 * out.parts["sc"]
        )


def test_unweighted_returns_ce_plus_sc() -> None:
    logits, feature, labels = _batch()
    out = DSM()(logits, feature, labels, weighted=False, grad_norm=7.0)
    assert isinstance(out, LossOutput)
    assert set(out.parts) == PART_NAMES
    assert all(not value.requires_grad for value in out.parts.values())
    torch.testing.assert_close(out.loss.detach(), out.parts["ce"] + out.parts["sc"])
    assert float(out.parts["lambda_ce"]) == 1.0 and float(out.parts["lambda_sc"]) == 1.0
    weighted = DSM()(logits, feature, labels, weighted=True, grad_norm=7.0)
    assert not torch.allclose(weighted.loss, out.loss)


def test_observe_grad_norm_drives_the_weights_and_is_checkpointed() -> None:
    logits, feature, labels = _batch()
    loss = DSM()
    first = loss(logits, feature, labels)
    assert float(first.parts["grad_norm"]) == 1.0  # before any observation
    loss.observe_grad_norm(torch.tensor(3.0))
    out = loss(logits, feature, labels)
    assert float(out.parts["grad_norm"]) == 3.0
    torch.testing.assert_close(out.parts["lambda_ce"], torch.tensor(7.5))
    explicit = loss(logits, feature, labels, grad_norm=9.0)  # an explicit g wins
    torch.testing.assert_close(explicit.parts["lambda_ce"], torch.tensor(9.0))
    loss.observe_grad_norm(math.nan)  # ignored
    assert float(loss.observed_grad_norm) == 3.0

    restored = DSM()
    restored.load_state_dict(loss.state_dict())
    assert float(restored.observed_grad_norm) == 3.0
    torch.testing.assert_close(restored(logits, feature, labels).loss, out.loss)


def test_observe_grad_norm_with_ema() -> None:
    loss = DSM(ema_momentum=0.9)
    loss.observe_grad_norm(2.0)
    assert float(loss.observed_grad_norm) == pytest.approx(2.0)  # the first value initialises
    loss.observe_grad_norm(4.0)
    assert float(loss.observed_grad_norm) == pytest.approx(0.9 * 2.0 + 0.1 * 4.0)
    loss.observe_grad_norm(math.inf)
    assert float(loss.observed_grad_norm) == pytest.approx(2.2)
    loss.observe_grad_norm(torch.tensor(1.0))
    assert float(loss.observed_grad_norm) == pytest.approx(0.9 * 2.2 + 0.1 * 1.0)


def test_ib_sign_flips_the_ib_contribution() -> None:
    logits, feature, labels = _batch()
    plus = DSM(ib_sign=1.0)(logits, feature, labels).parts
    minus = DSM(ib_sign=-1.0)(logits, feature, labels).parts
    assert float(plus["ib"]) > 0
    torch.testing.assert_close(plus["sc"] - plus["dsc"], 0.5 * plus["ib"])
    torch.testing.assert_close(minus["sc"] - minus["dsc"], -0.5 * minus["ib"])


def test_ce_part_is_label_smoothed_cross_entropy() -> None:
    logits, feature, labels = _batch()
    out = DSM(class_weights=[1.0, 2.0, 0.5])(logits, feature, labels)
    expected = F.cross_entropy(
        logits, labels, weight=torch.tensor([1.0, 2.0, 0.5]), label_smoothing=0.1
    )
    torch.testing.assert_close(out.parts["ce"], expected)


# ---------------------------------------------------------------------------- gradients, edge cases


def test_gradcheck_float64(monkeypatch: pytest.MonkeyPatch) -> None:
    logits, feature, labels = _batch(n=6, d=4, k=3, seed=11, dtype=torch.float64)
    labels = torch.tensor([0, 0, 1, 1, 2, 1])
    # the DRO weights are constants of the loss: freeze them at the point of the check so that
    # the finite differences do not see them move
    frozen = dro_weights(F.normalize(feature, dim=1) @ F.normalize(feature, dim=1).T, 0.2)
    monkeypatch.setattr(dsm_module, "dro_weights", lambda cos, eta: frozen)
    loss = DSM(class_weights=[1.0, 2.0, 0.5])

    def function(logits: Tensor, feature: Tensor) -> Tensor:
        return loss(logits, feature, labels, grad_norm=2.0).loss

    inputs = (logits.requires_grad_(), feature.requires_grad_())
    assert torch.autograd.gradcheck(function, inputs, eps=1e-6, atol=1e-6)


@pytest.mark.parametrize(
    "case", ["single sample", "all labels equal", "all labels distinct", "identical", "zero"]
)
def test_edge_cases_give_finite_loss_and_gradients(case: str) -> None:
    logits, feature, labels = _batch(n=6, d=5, k=3, seed=4)
    if case == "single sample":
        logits, feature, labels = logits[:1], feature[:1], labels[:1]
    elif case == "all labels equal":
        labels = torch.zeros(6, dtype=torch.long)
    elif case == "all labels distinct":
        logits = torch.randn(6, 6)
        labels = torch.arange(6)
    elif case == "identical":
        feature = feature[:1].expand(6, -1).clone()
    elif case == "zero":
        feature = torch.zeros(6, 5)
    logits.requires_grad_()
    feature.requires_grad_()
    out = DSM()(logits, feature, labels)
    assert torch.isfinite(out.loss)
    assert all(torch.isfinite(value) for value in out.parts.values())
    out.loss.backward()
    assert logits.grad is not None and feature.grad is not None
    assert torch.isfinite(logits.grad).all() and torch.isfinite(feature.grad).all()
    if case in ("single sample", "all labels distinct"):
        assert float(out.parts["dsc"]) == 0.0
    if case in ("single sample", "identical", "zero"):
        assert float(out.parts["ib"]) == pytest.approx(0.0, abs=1e-6)


def test_float32_result_under_autocast_and_float64_kept() -> None:
    logits, feature, labels = _batch()
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        out = DSM()(logits.bfloat16(), feature.bfloat16(), labels)
    assert out.loss.dtype == torch.float32
    reference = DSM()(logits.bfloat16().float(), feature.bfloat16().float(), labels)
    torch.testing.assert_close(out.loss, reference.loss)
    logits64, feature64, labels64 = _batch(dtype=torch.float64)
    assert DSM()(logits64, feature64, labels64).loss.dtype == torch.float64


@pytest.mark.parametrize(
    ("arguments", "match"),
    [
        ({"tau": 0.0}, "tau"),
        ({"eta": -0.1}, "eta"),
        ({"ib_sign": 0.5}, "ib_sign"),
        ({"label_smoothing": 1.5}, "label_smoothing"),
        ({"fixed_weights": (1.0, -1.0)}, "fixed_weights"),
        ({"ema_momentum": 1.0}, "ema_momentum"),
    ],
)
def test_dsm_rejects_bad_arguments(arguments: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        DSM(**arguments)  # type: ignore[arg-type]


def test_dsm_rejects_mismatched_inputs() -> None:
    logits, feature, labels = _batch()
    with pytest.raises(ValueError, match="labels"):
        DSM()(logits, feature, labels[:-1])
    with pytest.raises(ValueError, match="features"):
        DSM()(logits, feature[:-1], labels)
    with pytest.raises(ValueError, match="class weight"):
        DSM(class_weights=[1.0, 2.0])(logits, feature, labels)


# ---------------------------------------------------------------------------- CE baseline


def test_classification_loss_is_cross_entropy_only() -> None:
    logits, feature, labels = _batch()
    loss = ClassificationLoss(label_smoothing=0.1, class_weights=[1.0, 3.0, 0.5])
    out = loss(logits, feature, labels, weighted=False, grad_norm=4.0)
    expected = F.cross_entropy(
        logits, labels, weight=torch.tensor([1.0, 3.0, 0.5]), label_smoothing=0.1
    )
    torch.testing.assert_close(out.loss, expected)
    assert set(out.parts) == {"ce"}
    assert not out.parts["ce"].requires_grad
    with pytest.raises(ValueError, match="logits"):
        loss(logits[0], feature, labels)
