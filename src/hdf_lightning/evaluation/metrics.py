"""Evaluation metrics of dynamic facial expression recognition: WAR, UAR, per-class recall.

WAR (weighted average recall) is the overall accuracy; UAR (unweighted average recall) is the
mean of the per-class recalls (balanced accuracy). Both are computed on the whole evaluation set.
The online metrics are torchmetrics objects whose states are counts (true/false positives and
negatives, the confusion matrix) reduced by summation, so under DDP the synchronised value is the
value on the union of all ranks' samples, never a mean of per-rank values.

Averaging convention (torchmetrics' ``MulticlassRecall(average="macro")``, reproduced exactly by
the offline reference :func:`uar_war_from_predictions`): a class that occurs neither in the targets
nor in the predictions is left out of the UAR; a class that is predicted but never occurs in the
targets counts with recall 0. On an evaluation set that contains every class, UAR is the plain mean
of the K recalls.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torchmetrics import MetricCollection
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassConfusionMatrix,
    MulticlassRecall,
)

__all__ = [
    "EvaluationMetrics",
    "confusion_matrix_from_predictions",
    "make_metrics",
    "uar_war_from_predictions",
]

ArrayLike = Tensor | np.ndarray | Sequence[int] | Sequence[Sequence[float]]


def _check_classes(num_classes: int, class_names: Sequence[str]) -> list[str]:
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"num_classes must be an integer >= 2, got {num_classes!r}")
    names = [str(name) for name in class_names]
    if len(names) != num_classes:
        raise ValueError(
            f"class_names must hold one name per class: expected {num_classes} names, "
            f"got {len(names)} ({names})"
        )
    if len(set(names)) != len(names):
        raise ValueError(f"class_names must be unique, got {names}")
    return names


def make_metrics(
    num_classes: int, class_names: Sequence[str], *, prefix: str | None = None
) -> MetricCollection:
    """Build the scalar evaluation metrics as one collection.

    Args:
        num_classes: number of classes K.
        class_names: K class names, in class-index order (checked against ``num_classes``).
        prefix: optional key prefix of the collection (e.g. ``"val/"``).

    Returns:
        A ``MetricCollection`` with ``war`` (``MulticlassAccuracy(average="micro")``) and
        ``uar`` (``MulticlassRecall(average="macro")``). ``update`` takes predictions ``(N,)``
        (class indices) or scores ``(N, K)`` (logits or probabilities) and targets ``(N,)``;
        ``compute`` returns scalar tensors. The states are summed over ranks under DDP.
    """
    _check_classes(num_classes, class_names)
    return MetricCollection(
        {
            "war": MulticlassAccuracy(num_classes=num_classes, average="micro"),
            "uar": MulticlassRecall(num_classes=num_classes, average="macro"),
        },
        prefix=prefix,
    )


class EvaluationMetrics(nn.Module):
    """WAR, UAR, per-class recall and confusion matrix accumulated over an evaluation set.

    One state: the confusion matrix of counts (a torchmetrics ``MulticlassConfusionMatrix``, summed
    over DDP ranks in :meth:`compute`); every figure is derived from it with the averaging
    convention of the module docstring (the same as :func:`uar_war_from_predictions`). Clone it per
    stage (``copy.deepcopy``) rather than building one object per figure.

    Args:
        num_classes: number of classes K.
        class_names: K class names, in class-index order.
    """

    def __init__(self, num_classes: int, class_names: Sequence[str]) -> None:
        super().__init__()
        self.class_names = _check_classes(num_classes, class_names)
        self.num_classes = num_classes
        self.confusion_matrix = MulticlassConfusionMatrix(num_classes=num_classes)

    def update(self, preds_or_logits: Tensor, target: Tensor) -> None:
        """Accumulate a batch.

        Args:
            preds_or_logits: predicted class indices ``(N,)`` or scores ``(N, K)`` (logits or
                probabilities; the arg-max is taken).
            target: true class indices ``(N,)``.
        """
        if target.ndim != 1:
            raise ValueError(f"target must have shape (N,), got {tuple(target.shape)}")
        expected = f"(N,) class indices or (N, {self.num_classes}) scores with N={target.shape[0]}"
        if preds_or_logits.shape[:1] != target.shape[:1] or preds_or_logits.ndim not in (1, 2):
            raise ValueError(f"preds must be {expected}, got {tuple(preds_or_logits.shape)}")
        if preds_or_logits.ndim == 2 and preds_or_logits.shape[1] != self.num_classes:
            raise ValueError(f"preds must be {expected}, got {tuple(preds_or_logits.shape)}")
        self.confusion_matrix.update(preds_or_logits, target)

    def compute(self) -> dict[str, Any]:
        """Return the metrics over everything accumulated since the last :meth:`reset`.

        Under DDP the confusion matrix is first summed over all ranks (torchmetrics
        synchronisation).

        Returns:
            A dict with
            ``war``: overall accuracy, scalar tensor in [0, 1];
            ``uar``: mean per-class recall over the classes seen as a target or a prediction,
            scalar tensor in [0, 1];
            ``per_class_recall``: ``dict[str, Tensor]`` class name -> recall (scalar; 0 for a
            class without samples), in class order;
            ``support``: ``(K,)`` long tensor, evaluation samples of each true class;
            ``confusion_matrix``: ``(K, K)`` long tensor of counts, rows = true class, columns =
            predicted class.
        """
        cm = self.confusion_matrix.compute()  # (K_true, K_pred)
        counts = cm.double()
        true_positive = counts.diagonal()  # (K,)
        support = counts.sum(dim=1)  # (K,)
        predicted = counts.sum(dim=0)  # (K,)
        total = counts.sum()
        recall = torch.where(support > 0, true_positive / support.clamp(min=1), 0.0)  # (K,)
        counted = (support + predicted) > 0
        war = true_positive.sum() / total if total > 0 else total
        uar = recall[counted].mean() if bool(counted.any()) else total
        return {
            "war": war.float(),
            "uar": uar.float(),
            "per_class_recall": {
                name: recall[i].float() for i, name in enumerate(self.class_names)
            },
            "support": cm.sum(dim=1),
            "confusion_matrix": cm,
        }

    def reset(self) -> None:
        """Clear the accumulated state."""
        self.confusion_matrix.reset()


def _as_labels(preds: ArrayLike, targets: ArrayLike, num_classes: int) -> tuple[Tensor, Tensor]:
    """Convert predictions (N,) or scores (N, K) and targets (N,) to two (N,) long tensors."""
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"num_classes must be an integer >= 2, got {num_classes!r}")
    pred = torch.as_tensor(np.asarray(preds) if not isinstance(preds, Tensor) else preds)
    target = torch.as_tensor(np.asarray(targets) if not isinstance(targets, Tensor) else targets)
    pred, target = pred.detach().cpu(), target.detach().cpu().long()
    if target.ndim != 1:
        raise ValueError(f"targets must have shape (N,), got {tuple(target.shape)}")
    if pred.ndim == 2 and pred.shape[1] == num_classes:
        pred = pred.argmax(dim=1)  # (N, K) scores -> (N,)
    if pred.shape != target.shape:
        raise ValueError(
            f"preds must be (N,) class indices or (N, {num_classes}) scores with N={len(target)}, "
            f"got {tuple(pred.shape)}"
        )
    pred = pred.long()
    for name, labels in (("preds", pred), ("targets", target)):
        if labels.numel() and (labels.min() < 0 or labels.max() >= num_classes):
            raise ValueError(
                f"{name} must be class indices in [0, {num_classes - 1}], "
                f"found values in [{int(labels.min())}, {int(labels.max())}]"
            )
    return pred, target


def confusion_matrix_from_predictions(
    preds: ArrayLike, targets: ArrayLike, num_classes: int
) -> Tensor:
    """Confusion matrix of counts, in plain torch.

    Args:
        preds: predicted class indices ``(N,)`` or scores ``(N, K)``.
        targets: true class indices ``(N,)``.
        num_classes: number of classes K.

    Returns:
        ``(K, K)`` long tensor, rows = true class, columns = predicted class.
    """
    pred, target = _as_labels(preds, targets, num_classes)
    flat = target * num_classes + pred  # (N,) index into the flattened (K, K) matrix
    counts = torch.bincount(flat, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes)  # (K_true, K_pred)


def uar_war_from_predictions(
    preds: ArrayLike, targets: ArrayLike, num_classes: int
) -> tuple[float, float]:
    """Offline reference of WAR and UAR from a whole set of predictions (no torchmetrics).

    Follows the averaging convention of the module docstring, so it agrees with
    :class:`EvaluationMetrics` on the same samples.

    Args:
        preds: predicted class indices ``(N,)`` or scores ``(N, K)`` (arg-max taken).
        targets: true class indices ``(N,)``.
        num_classes: number of classes K.

    Returns:
        ``(war, uar)`` as floats in [0, 1] (both 0.0 for an empty set).
    """
    cm = confusion_matrix_from_predictions(preds, targets, num_classes).double()
    total = cm.sum()
    if total == 0:
        return 0.0, 0.0
    true_positive = cm.diagonal()  # (K,)
    support = cm.sum(dim=1)  # (K,) samples per true class
    predicted = cm.sum(dim=0)  # (K,) predictions per class
    war = float(true_positive.sum() / total)
    recall = torch.where(support > 0, true_positive / support.clamp(min=1), 0.0)
    counted = (support + predicted) > 0  # classes seen as target or prediction
    uar = float(recall[counted].mean())
    return war, uar
