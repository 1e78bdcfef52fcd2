"""The value every loss of the package returns."""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor

__all__ = ["LossOutput"]


@dataclass(frozen=True)
class LossOutput:
    """A loss value and its named parts.

    Attributes:
        loss: scalar () to back-propagate.
        parts: detached scalars () for logging, e.g. ``ce``, ``sc``, ``dsc``, ``ib``,
            ``lambda_ce``, ``lambda_sc``, ``grad_norm``.
    """

    loss: Tensor
    parts: dict[str, Tensor] = field(default_factory=dict)
