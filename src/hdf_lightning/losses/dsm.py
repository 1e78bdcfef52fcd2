"""DSM: distribution-aware scaling of cross-entropy and a DRO-weighted supervised contrastive loss.

Notation (docs/method.md §3): f (N, D) features, z = f / ||f|| (N, D), c_ij = z_i·z_j the cosine
similarity, y (N,) labels, P(i) = {p ≠ i : y_p = y_i} the positives of anchor i.

* DRO weights (constants): w_ij = exp(−(c_ij − η)² / (2η²)) for j ≠ i, rescaled per row so that
  mean_{j≠i} w_ij = 1.
* D-SC: ℓ_ij = c_ij / τ;  L_DSC = mean_{i : |P(i)|>0} −1/|P(i)| Σ_{p∈P(i)} [ℓ_ip − log Σ_{a≠i}
  w_ia exp(ℓ_ia)].
* IB: L_IB = trace(Cov(z)) with the unbiased covariance over the batch.
* L_SC = L_DSC + s_IB · β_IB · L_IB;  L_CE = cross-entropy with label smoothing.
* Gradient-driven scaling: λ_CE = α·g/(g+1), λ_SC = β/(g+1) with g = ||∇θ(L_CE + L_SC)||₂;
  loss = λ_CE·L_CE + λ_SC·L_SC.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hdf_lightning.losses.ce import check_classification_inputs, cross_entropy
from hdf_lightning.losses.distributed import gather_tensor, gather_with_grad, world_size
from hdf_lightning.losses.output import LossOutput

__all__ = ["DSM", "dro_supcon_loss", "dro_weights", "dsm_lambdas", "information_bottleneck"]

_NORMALISE_EPS = 1e-6


def _check_square(cos: Tensor) -> None:
    if cos.ndim != 2 or cos.shape[0] != cos.shape[1]:
        raise ValueError(f"expected a square (N, N) similarity matrix, got {tuple(cos.shape)}")


def dro_weights(cos: Tensor, eta: float = 0.2) -> Tensor:
    """Gaussian DRO weights of every pair, normalised to mean 1 per row off the diagonal.

    w_ij = exp(−(c_ij − η)² / (2η²)) for j ≠ i, then w_ij ← (N−1)·w_ij / Σ_{a≠i} w_ia. The
    normalisation is done in log space, so a row never underflows to all zeros.

    Args:
        cos: (N, N) cosine similarities c_ij.
        eta: η > 0, the similarity that gets the largest weight and the Gaussian's width.

    Returns:
        (N, N) weights without gradient (constants of the loss), 0 on the diagonal; all zeros
        when N < 2.
    """
    _check_square(cos)
    if eta <= 0:
        raise ValueError(f"expected eta > 0, got {eta}")
    c = cos.detach()
    n = c.shape[0]
    if n < 2:
        return torch.zeros_like(c)
    diagonal = torch.eye(n, dtype=torch.bool, device=c.device)
    log_w = -((c - eta) ** 2) / (2.0 * eta**2)  # (N, N)
    log_w = log_w.masked_fill(diagonal, -math.inf)
    log_w = log_w - torch.logsumexp(log_w, dim=1, keepdim=True) + math.log(n - 1)
    return log_w.exp()


def dro_supcon_loss(
    z: Tensor,
    labels: Tensor,
    tau: float = 0.07,
    eta: float = 0.2,
    weight_positives: bool = True,
) -> Tensor:
    """DRO-weighted supervised contrastive loss L_DSC.

    Anchors without positives are skipped; when no anchor has a positive (or N < 2) the result
    is 0, still connected to the graph of ``z``. The log-sum-exp of the denominator subtracts
    the row maximum internally, which is the usual stabilisation (the loss does not change).

    Args:
        z: (N, D) L2-normalised embeddings.
        labels: (N,) integer labels.
        tau: temperature τ > 0.
        eta: η of :func:`dro_weights`.
        weight_positives: when False the positives get weight 1 in the denominator, which makes
            the loss a weighted SupCon that is ≥ 0.

    Returns:
        Scalar () loss in the dtype of ``z``.
    """
    if z.ndim != 2:
        raise ValueError(f"expected embeddings of shape (N, D), got {tuple(z.shape)}")
    if labels.shape != (z.shape[0],):
        raise ValueError(
            f"expected labels of shape ({z.shape[0]},), got shape {tuple(labels.shape)}"
        )
    if tau <= 0:
        raise ValueError(f"expected tau > 0, got {tau}")
    n = z.shape[0]
    if n < 2:
        return z.sum() * 0.0
    cos = z @ z.T  # (N, N)
    diagonal = torch.eye(n, dtype=torch.bool, device=z.device)
    positives = (labels[:, None] == labels[None, :]) & ~diagonal  # (N, N)
    weights = dro_weights(cos, eta)  # (N, N), 0 on the diagonal
    if not weight_positives:
        weights = torch.where(positives, torch.ones_like(weights), weights)
    logits = cos / tau  # (N, N)
    # log Σ_{a≠i} w_ia exp(ℓ_ia): log w = −inf on the diagonal removes a = i
    log_denominator = torch.logsumexp(logits + weights.log(), dim=1, keepdim=True)  # (N, 1)
    log_prob = logits - log_denominator  # (N, N)
    num_positives = positives.sum(dim=1)  # (N,)
    sum_log_prob = torch.where(positives, log_prob, torch.zeros_like(log_prob)).sum(dim=1)
    per_anchor = -sum_log_prob / num_positives.clamp_min(1)  # (N,)
    has_positive = num_positives > 0
    per_anchor = torch.where(has_positive, per_anchor, torch.zeros_like(per_anchor))
    return per_anchor.sum() / has_positive.sum().clamp_min(1)


def information_bottleneck(z: Tensor) -> Tensor:
    """Trace of the unbiased covariance of ``z`` over the batch, L_IB = Σ_i ||z_i − z̄||² / (N−1).

    Args:
        z: (N, D) embeddings.

    Returns:
        Scalar () in the dtype of ``z``; 0 (connected to the graph) when N < 2.
    """
    if z.ndim != 2:
        raise ValueError(f"expected embeddings of shape (N, D), got {tuple(z.shape)}")
    n = z.shape[0]
    if n < 2:
        return z.sum() * 0.0
    centred = z - z.mean(dim=0, keepdim=True)  # (N, D)
    return centred.pow(2).sum() / (n - 1)


def dsm_lambdas(g: Tensor | float, alpha: float = 10.0, beta: float = 0.1) -> tuple[Tensor, Tensor]:
    """Gradient-driven weights λ_CE = α·g/(g+1) and λ_SC = β/(g+1).

    Args:
        g: gradient norm ≥ 0, a float or a scalar tensor (its device is kept); g = ∞ gives
            (α, 0).

    Returns:
        (λ_CE, λ_SC), two detached scalar tensors (float32, or float64 for a float64 ``g``).
    """
    if not isinstance(g, Tensor):
        if not g >= 0:
            raise ValueError(f"expected a gradient norm g >= 0, got {g}")
        g = torch.tensor(g)
    if g.numel() != 1:
        raise ValueError(f"expected a scalar gradient norm, got shape {tuple(g.shape)}")
    g = g.detach().reshape(())
    g = g.to(torch.promote_types(g.dtype, torch.float32))
    lambda_ce = torch.where(torch.isinf(g), torch.full_like(g, alpha), alpha * g / (g + 1.0))
    lambda_sc = beta / (g + 1.0)
    return lambda_ce, lambda_sc


class DSM(nn.Module):
    """Distribution-aware scaling loss: λ_CE·L_CE + λ_SC·(L_DSC + s_IB·β_IB·L_IB).

    ``forward(logits, feature, labels)`` takes logits (N, K), features (N, D) and labels (N,).
    ``weighted=False`` returns the unweighted L_CE + L_SC (SAM's first pass, whose gradient norm
    g drives the weights). ``weighted=True`` uses λ's from ``grad_norm`` when given, else from the
    last value passed to :meth:`observe_grad_norm` (1.0 before any), unless ``fixed_weights``
    is set. Everything is computed in float32 (float64 for float64 inputs), also under autocast.

    Data parallelism: with ``gather_distributed`` and more than one rank, the normalised features
    and the labels are gathered from all ranks (:func:`gather_with_grad`, whose backward sums the
    ranks' gradients), and every rank computes the same L_DSC and L_IB on the global batch. With
    DistributedDataParallel averaging gradients over the R ranks, the parameter gradient is then
    exactly the single-process gradient on the concatenated batch. L_CE is computed on the local
    batch as R·Σ_local ℓ_i / Σ_global w_{y_i} (w ≡ 1 without class weights): equal to the local
    mean when all ranks hold the same number of samples, and exact for unequal last batches.
    Its average over ranks is the global cross-entropy.

    Args:
        tau: temperature τ of the contrastive logits.
        eta: η of the Gaussian DRO weights.
        beta_ib: β_IB, weight of the information-bottleneck term.
        ib_sign: s_IB ∈ {+1, −1}; +1 minimises the covariance trace, −1 maximises it (as the
            released code does).
        label_smoothing: label smoothing ε of the cross-entropy.
        alpha: α of λ_CE = α·g/(g+1).
        beta: β of λ_SC = β/(g+1).
        fixed_weights: (λ_CE, λ_SC) to use instead of the gradient-driven weights, e.g. (10.0, 0.1).
        weight_positives: whether the DRO weights also apply to the positives in the denominator.
        ema_momentum: when set (e.g. 0.9), :meth:`observe_grad_norm` keeps an exponential moving
            average of g instead of the last value.
        class_weights: optional weight of each class for the cross-entropy (length K).
        gather_distributed: compute the contrastive and IB terms on the global batch under
            torch.distributed.
    """

    class_weights: Tensor | None
    observed_grad_norm: Tensor
    num_observed: Tensor

    def __init__(
        self,
        *,
        tau: float = 0.07,
        eta: float = 0.2,
        beta_ib: float = 0.5,
        ib_sign: float = 1.0,
        label_smoothing: float = 0.1,
        alpha: float = 10.0,
        beta: float = 0.1,
        fixed_weights: tuple[float, float] | None = None,
        weight_positives: bool = True,
        ema_momentum: float | None = None,
        class_weights: list[float] | None = None,
        gather_distributed: bool = True,
    ) -> None:
        super().__init__()
        if tau <= 0:
            raise ValueError(f"expected tau > 0, got {tau}")
        if eta <= 0:
            raise ValueError(f"expected eta > 0, got {eta}")
        if beta_ib < 0:
            raise ValueError(f"expected beta_ib >= 0, got {beta_ib}")
        if ib_sign not in (1.0, -1.0):
            raise ValueError(f"expected ib_sign to be +1 or -1, got {ib_sign}")
        if not 0.0 <= label_smoothing <= 1.0:
            raise ValueError(f"expected label_smoothing in [0, 1], got {label_smoothing}")
        if alpha < 0 or beta < 0:
            raise ValueError(f"expected alpha >= 0 and beta >= 0, got alpha={alpha}, beta={beta}")
        if fixed_weights is not None and (len(fixed_weights) != 2 or min(fixed_weights) < 0):
            raise ValueError(
                f"expected fixed_weights = (lambda_ce, lambda_sc) >= 0, got {fixed_weights}"
            )
        if ema_momentum is not None and not 0.0 <= ema_momentum < 1.0:
            raise ValueError(f"expected ema_momentum in [0, 1) or None, got {ema_momentum}")
        self.tau = tau
        self.eta = eta
        self.beta_ib = beta_ib
        self.ib_sign = float(ib_sign)
        self.label_smoothing = label_smoothing
        self.alpha = alpha
        self.beta = beta
        self.fixed_weights = None if fixed_weights is None else tuple(map(float, fixed_weights))
        self.weight_positives = weight_positives
        self.ema_momentum = ema_momentum
        self.gather_distributed = gather_distributed
        weights = None if class_weights is None else torch.tensor(class_weights)
        if weights is not None and (weights.ndim != 1 or bool((weights < 0).any())):
            raise ValueError(f"expected a list of non-negative class weights, got {class_weights}")
        self.register_buffer("class_weights", weights, persistent=False)
        # checkpointed, so that a resumed run continues with the same λ's
        self.register_buffer("observed_grad_norm", torch.ones(()))
        self.register_buffer("num_observed", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def observe_grad_norm(self, g: Tensor | float) -> None:
        """Record the gradient norm g that drives the next ``weighted=True`` call.

        Stores g, or updates the moving average v ← m·v + (1−m)·g when ``ema_momentum`` = m is
        set (the first observation initialises v = g). A non-finite g (an overflowed
        mixed-precision step) is ignored. Runs without a host-device synchronisation.

        Args:
            g: scalar gradient norm (float or tensor).
        """
        value = torch.as_tensor(g).detach()
        if value.numel() != 1:
            raise ValueError(f"expected a scalar gradient norm, got shape {tuple(value.shape)}")
        value = value.reshape(()).to(self.observed_grad_norm)
        old = self.observed_grad_norm
        if self.ema_momentum is None:
            new = value
        else:
            momentum = self.ema_momentum
            average = momentum * old + (1.0 - momentum) * value
            new = torch.where(self.num_observed == 0, value, average)
        finite = torch.isfinite(value)
        self.observed_grad_norm.copy_(torch.where(finite, new, old))
        self.num_observed.add_(finite.long())

    def forward(
        self,
        logits: Tensor,
        feature: Tensor,
        labels: Tensor,
        *,
        weighted: bool = True,
        grad_norm: Tensor | float | None = None,
    ) -> LossOutput:
        """Compute the DSM loss.

        Args:
            logits: (N, K) class scores (no softmax).
            feature: (N, D) features (not normalised).
            labels: (N,) integer class indices.
            weighted: False returns L_CE + L_SC; True returns λ_CE·L_CE + λ_SC·L_SC.
            grad_norm: g for the λ's of this call; defaults to the observed one.

        Returns:
            ``LossOutput``: ``loss`` () float32 (float64 for float64 inputs) and detached scalar
            ``parts`` ce, sc, dsc, ib, lambda_ce, lambda_sc (the weights applied in ``loss``,
            1.0 when ``weighted=False``) and grad_norm (the g behind the λ's).
        """
        weights = self.class_weights
        check_classification_inputs(logits, labels, weights)
        if feature.ndim != 2 or feature.shape[0] != logits.shape[0]:
            raise ValueError(
                f"expected features of shape ({logits.shape[0]}, D) to match logits "
                f"{tuple(logits.shape)}, got shape {tuple(feature.shape)}"
            )
        dtype = torch.promote_types(torch.promote_types(logits.dtype, feature.dtype), torch.float32)
        with torch.autocast(device_type=logits.device.type, enabled=False):
            logits = logits.to(dtype)
            class_weights = None if weights is None else weights.to(dtype)
            z = F.normalize(feature.to(dtype), dim=1, eps=_NORMALISE_EPS)  # (N, D)
            z_all, labels_all = z, labels
            normaliser: Tensor | None = None
            ranks = world_size() if self.gather_distributed else 1
            if ranks > 1:
                z_all = gather_with_grad(z)  # (N_global, D)
                labels_all = gather_tensor(labels)  # (N_global,)
                if class_weights is None:
                    total = torch.tensor(float(labels_all.shape[0]), dtype=dtype)
                else:
                    total = class_weights[labels_all].sum()
                normaliser = total.to(logits.device) / ranks
            ce = cross_entropy(
                logits,
                labels,
                label_smoothing=self.label_smoothing,
                class_weights=class_weights,
                normaliser=normaliser,
            )
            dsc = dro_supcon_loss(
                z_all, labels_all, self.tau, self.eta, weight_positives=self.weight_positives
            )
            ib = information_bottleneck(z_all)
            sc = dsc + (self.ib_sign * self.beta_ib) * ib

            g = self.observed_grad_norm if grad_norm is None else torch.as_tensor(grad_norm)
            g = g.detach().to(device=logits.device, dtype=dtype).reshape(())
            if not weighted:
                lambda_ce, lambda_sc = torch.ones_like(g), torch.ones_like(g)
            elif self.fixed_weights is not None:
                lambda_ce = torch.full_like(g, self.fixed_weights[0])
                lambda_sc = torch.full_like(g, self.fixed_weights[1])
            else:
                lambda_ce, lambda_sc = dsm_lambdas(g, self.alpha, self.beta)
            loss = lambda_ce * ce + lambda_sc * sc
        parts = {
            "ce": ce,
            "sc": sc,
            "dsc": dsc,
            "ib": ib,
            "lambda_ce": lambda_ce,
            "lambda_sc": lambda_sc,
            "grad_norm": g,
        }
        return LossOutput(loss=loss, parts={k: v.detach() for k, v in parts.items()})

    def extra_repr(self) -> str:
        return (
            f"tau={self.tau}, eta={self.eta}, beta_ib={self.beta_ib}, ib_sign={self.ib_sign}, "
            f"label_smoothing={self.label_smoothing}, alpha={self.alpha}, beta={self.beta}, "
            f"fixed_weights={self.fixed_weights}, weight_positives={self.weight_positives}, "
            f"ema_momentum={self.ema_momentum}"
        )
