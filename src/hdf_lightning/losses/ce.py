"""Cross-entropy with label smoothing: the baseline loss and the CE part of DSM."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hdf_lightning.losses.output import LossOutput

__all__ = ["ClassificationLoss", "check_classification_inputs", "cross_entropy"]


def check_classification_inputs(
    logits: Tensor, labels: Tensor, class_weights: Tensor | None = None
) -> None:
    """Raise ``ValueError`` unless logits (N, K), labels (N,) integer and weights (K,) agree.

    Args:
        logits: (N, K) class scores, N ≥ 1.
        labels: (N,) integer class indices.
        class_weights: optional (K,) per-class weights.
    """
    if logits.ndim != 2 or logits.shape[0] == 0:
        raise ValueError(
            f"expected logits of shape (N, K) with N >= 1, got shape {tuple(logits.shape)}"
        )
    if labels.ndim != 1 or labels.shape[0] != logits.shape[0]:
        raise ValueError(
            f"expected labels of shape ({logits.shape[0]},) to match logits "
            f"{tuple(logits.shape)}, got shape {tuple(labels.shape)}"
        )
    if labels.dtype.is_floating_point or labels.dtype == torch.bool:
        raise ValueError(f"expected integer class labels, got dtype {labels.dtype}")
    if class_weights is not None and class_weights.shape != (logits.shape[1],):
        raise ValueError(
            f"expected one class weight per class ({logits.shape[1]}), "
            f"got {class_weights.shape[0]} weights"
        )


def cross_entropy(
    logits: Tensor,
    labels: Tensor,
    *,
    label_smoothing: float = 0.1,
    class_weights: Tensor | None = None,
    normaliser: Tensor | None = None,
) -> Tensor:
    """Label-smoothed (optionally class-weighted) cross-entropy.

    Args:
        logits: (N, K) unnormalised class scores.
        labels: (N,) integer class indices.
        label_smoothing: ε of ``torch.nn.functional.cross_entropy``, in [0, 1].
        class_weights: optional (K,) weight of each class.
        normaliser: optional scalar () that replaces the default denominator (N, or Σ_i w[y_i]
            with class weights): the result is then Σ_i loss_i / normaliser. Used to normalise a
            local batch by the size of the global batch under data parallelism.

    Returns:
        Scalar () loss.
    """
    if normaliser is None:
        return F.cross_entropy(
            logits, labels, weight=class_weights, label_smoothing=label_smoothing
        )
    per_sample = F.cross_entropy(
        logits,
        labels,
        weight=class_weights,
        label_smoothing=label_smoothing,
        reduction="none",
    )  # (N,), already multiplied by w[y_i]
    return per_sample.sum() / normaliser


class ClassificationLoss(nn.Module):
    """Cross-entropy with label smoothing, with the same interface as :class:`DSM`.

    ``forward(logits, feature, labels)`` ignores ``feature``, ``weighted`` and ``grad_norm``, so
    the two losses are interchangeable in a training loop.

    Args:
        label_smoothing: label smoothing ε in [0, 1].
        class_weights: optional weight of each class (length K), e.g. inverse frequencies.
    """

    class_weights: Tensor | None

    def __init__(
        self, *, label_smoothing: float = 0.1, class_weights: list[float] | None = None
    ) -> None:
        super().__init__()
        if not 0.0 <= label_smoothing <= 1.0:
            raise ValueError(f"expected label_smoothing in [0, 1], got {label_smoothing}")
        self.label_smoothing = label_smoothing
        weights = None if class_weights is None else torch.tensor(class_weights)
        if weights is not None and (weights.ndim != 1 or bool((weights < 0).any())):
            raise ValueError(f"expected a list of non-negative class weights, got {class_weights}")
        self.register_buffer("class_weights", weights, persistent=False)

    def forward(
        self,
        logits: Tensor,
        feature: Tensor | None,
        labels: Tensor,
        *,
        weighted: bool = True,
        grad_norm: Tensor | float | None = None,
    ) -> LossOutput:
        """Cross-entropy of ``logits`` (N, K) against ``labels`` (N,); ``feature`` is unused.

        Returns:
            ``LossOutput`` with ``loss`` () in float32 (float64 for float64 logits) and
            ``parts = {"ce": loss.detach()}``.
        """
        weights = self.class_weights
        check_classification_inputs(logits, labels, weights)
        dtype = torch.promote_types(logits.dtype, torch.float32)
        with torch.autocast(device_type=logits.device.type, enabled=False):
            ce = cross_entropy(
                logits.to(dtype),
                labels,
                label_smoothing=self.label_smoothing,
                class_weights=None if weights is None else weights.to(dtype),
            )
        return LossOutput(loss=ce, parts={"ce": ce.detach()})

    def observe_grad_norm(self, g: Tensor | float) -> None:
        """No-op: cross-entropy ignores the gradient norm (kept so the losses interchange)."""

    def extra_repr(self) -> str:
        return f"label_smoothing={self.label_smoothing}"
