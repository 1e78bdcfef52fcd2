"""Per-iteration learning-rate schedules built from torch's schedulers."""

from __future__ import annotations

from torch.optim import Optimizer
from torch.optim.lr_scheduler import CosineAnnealingLR, LinearLR, LRScheduler, SequentialLR

__all__ = ["warmup_cosine_schedule"]


def warmup_cosine_schedule(
    optimizer: Optimizer,
    *,
    warmup_steps: int,
    total_steps: int,
    min_lr: float,
    warmup_start_factor: float = 1e-3,
) -> LRScheduler:
    """Linear warmup followed by a cosine decay to ``min_lr``, stepped once per iteration.

    With base LR ``lr`` of a parameter group, after ``k`` calls of ``scheduler.step()``:

    * k ≤ warmup_steps: lr·(s + (1 − s)·k / warmup_steps) with s = ``warmup_start_factor``
      (``LinearLR``); k = 0 gives lr·s, k = warmup_steps gives lr.
    * warmup_steps ≤ k ≤ total_steps: min_lr + (lr − min_lr)·(1 + cos(π·(k − warmup_steps) /
      (total_steps − warmup_steps))) / 2 (``CosineAnnealingLR``); k = total_steps gives min_lr.

    The schedule is meant for exactly ``total_steps`` steps; beyond that ``CosineAnnealingLR``
    would rise again.

    Args:
        optimizer: the optimizer (for SAM, its shared param_groups are those of the base).
        warmup_steps: number of warmup iterations, ≥ 0 (0: cosine only).
        total_steps: total number of iterations, > warmup_steps.
        min_lr: final learning rate, ≥ 0 (the same for every group).
        warmup_start_factor: s in (0, 1], the fraction of the LR at step 0.

    Returns:
        The scheduler (``SequentialLR``, or ``CosineAnnealingLR`` without warmup).
    """
    if warmup_steps < 0:
        raise ValueError(f"expected warmup_steps >= 0, got {warmup_steps}")
    if total_steps <= warmup_steps:
        raise ValueError(
            f"expected total_steps > warmup_steps, got total_steps={total_steps}, "
            f"warmup_steps={warmup_steps}"
        )
    if min_lr < 0:
        raise ValueError(f"expected min_lr >= 0, got {min_lr}")
    if not 0.0 < warmup_start_factor <= 1.0:
        raise ValueError(f"expected warmup_start_factor in (0, 1], got {warmup_start_factor}")
    if warmup_steps == 0:
        return CosineAnnealingLR(optimizer, T_max=total_steps, eta_min=min_lr)
    warmup = LinearLR(
        optimizer, start_factor=warmup_start_factor, end_factor=1.0, total_iters=warmup_steps
    )
    cosine = CosineAnnealingLR(optimizer, T_max=total_steps - warmup_steps, eta_min=min_lr)
    return SequentialLR(optimizer, schedulers=[warmup, cosine], milestones=[warmup_steps])
