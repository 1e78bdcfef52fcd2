"""Per-iteration learning-rate schedule: linear warm-up from 0, then a cosine decay."""

from __future__ import annotations

import math
from collections.abc import Callable

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR

__all__ = ["warmup_cosine_schedule"]


def _factor(
    base_lr: float, *, warmup_steps: int, total_steps: int, min_lr: float, start: float
) -> Callable[[int], float]:
    """k -> lr(k) / base_lr for one parameter group (see :func:`warmup_cosine_schedule`)."""
    floor = min_lr / base_lr if base_lr > 0 else 0.0
    decay_steps = total_steps - warmup_steps

    def factor(k: int) -> float:
        if k < warmup_steps:
            return start + (1.0 - start) * k / warmup_steps
        progress = min(k - warmup_steps, decay_steps) / decay_steps
        return floor + (1.0 - floor) * (1.0 + math.cos(math.pi * progress)) / 2.0

    return factor


def warmup_cosine_schedule(
    optimizer: Optimizer,
    *,
    warmup_steps: int,
    total_steps: int,
    min_lr: float,
    warmup_start_factor: float = 0.0,
) -> LambdaLR:
    """Linear warm-up followed by a cosine decay to ``min_lr``, stepped once per iteration.

    With base LR ``lr`` of a parameter group, after ``k`` calls of ``scheduler.step()``:

    * k ≤ warmup_steps: lr·(s + (1 − s)·k / warmup_steps) with s = ``warmup_start_factor``
      (default 0: the warm-up starts from 0, docs/method.md §5, so the first step does not move the
      weights); k = warmup_steps gives lr.
    * warmup_steps ≤ k ≤ total_steps: min_lr + (lr − min_lr)·(1 + cos(π·(k − warmup_steps) /
      (total_steps − warmup_steps))) / 2; k = total_steps gives min_lr.
    * k > total_steps: min_lr (the schedule does not rise again if a run takes more steps than
      estimated).

    The values are computed in closed form from k (a ``LambdaLR``), so a resumed scheduler
    continues exactly where its ``last_epoch`` says.

    Args:
        optimizer: the optimizer (for SAM, its shared param_groups are those of the base).
        warmup_steps: number of warm-up iterations, ≥ 0 (0: cosine only).
        total_steps: total number of iterations, > warmup_steps.
        min_lr: final learning rate, ≥ 0 (the same for every group).
        warmup_start_factor: s in [0, 1], the fraction of the LR at step 0.

    Returns:
        The scheduler.
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
    if not 0.0 <= warmup_start_factor <= 1.0:
        raise ValueError(f"expected warmup_start_factor in [0, 1], got {warmup_start_factor}")
    factors = [
        _factor(
            float(group.get("initial_lr", group["lr"])),
            warmup_steps=warmup_steps,
            total_steps=total_steps,
            min_lr=min_lr,
            start=warmup_start_factor,
        )
        for group in optimizer.param_groups
    ]
    return LambdaLR(optimizer, factors)
