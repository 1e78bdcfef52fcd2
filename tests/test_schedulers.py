"""Tests of the warmup + cosine learning-rate schedule."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from torch import nn

from hdf_lightning.optim import warmup_cosine_schedule


def _optimizer(*lrs: float) -> torch.optim.SGD:
    groups = [{"params": [nn.Parameter(torch.zeros(1))], "lr": lr} for lr in lrs]
    return torch.optim.SGD(groups, lr=lrs[0])


def _lrs_over(scheduler: torch.optim.lr_scheduler.LRScheduler, steps: int) -> list[float]:
    optimizer = scheduler.optimizer
    values = [optimizer.param_groups[0]["lr"]]
    for _ in range(steps):
        optimizer.step()
        scheduler.step()
        values.append(optimizer.param_groups[0]["lr"])
    return values


def test_warmup_then_cosine_values() -> None:
    # base 1.0, start factor 0.1, 4 warmup steps, 10 in total, min 0.1
    scheduler = warmup_cosine_schedule(
        _optimizer(1.0), warmup_steps=4, total_steps=10, min_lr=0.1, warmup_start_factor=0.1
    )
    cosine = [0.1 + 0.9 * (1 + math.cos(math.pi * k / 6)) / 2 for k in range(1, 7)]
    expected = [0.1, 0.325, 0.55, 0.775, 1.0, *cosine]
    assert _lrs_over(scheduler, 10) == pytest.approx(expected, abs=1e-9)
    assert expected[7] == pytest.approx(0.55)  # half way through the cosine
    assert expected[-1] == pytest.approx(0.1)  # ends at min_lr


def test_default_start_factor_and_recipe_shape() -> None:
    # recipe (docs/method.md §5): 5e-4 with a linear warmup from 0 and a cosine to 5e-6
    scheduler = warmup_cosine_schedule(
        _optimizer(5e-4), warmup_steps=20, total_steps=300, min_lr=5e-6
    )
    values = _lrs_over(scheduler, 300)
    assert values[0] == 0.0
    assert values[1] == pytest.approx(5e-4 / 20)
    assert values[20] == pytest.approx(5e-4)
    assert max(values) == pytest.approx(5e-4)
    assert values[300] == pytest.approx(5e-6)
    assert all(a <= b for a, b in itertools.pairwise(values[:21]))
    assert all(a >= b for a, b in itertools.pairwise(values[20:]))


def test_without_warmup_every_group_decays_to_min_lr() -> None:
    optimizer = _optimizer(1.0, 0.5)
    scheduler = warmup_cosine_schedule(optimizer, warmup_steps=0, total_steps=4, min_lr=0.0)
    assert [g["lr"] for g in optimizer.param_groups] == [1.0, 0.5]
    values = _lrs_over(scheduler, 4)
    assert values == pytest.approx([1.0, 0.8535534, 0.5, 0.1464466, 0.0], abs=1e-6)
    assert optimizer.param_groups[1]["lr"] == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize(
    ("arguments", "match"),
    [
        ({"warmup_steps": -1, "total_steps": 10, "min_lr": 0.0}, "warmup_steps"),
        ({"warmup_steps": 10, "total_steps": 10, "min_lr": 0.0}, "total_steps"),
        ({"warmup_steps": 1, "total_steps": 10, "min_lr": -1.0}, "min_lr"),
        (
            {"warmup_steps": 1, "total_steps": 10, "min_lr": 0.0, "warmup_start_factor": -0.1},
            "warmup_start_factor",
        ),
    ],
)
def test_rejects_bad_arguments(arguments: dict[str, float], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        warmup_cosine_schedule(_optimizer(1.0), **arguments)  # type: ignore[arg-type]


def test_stays_at_min_lr_after_total_steps() -> None:
    scheduler = warmup_cosine_schedule(_optimizer(1.0), warmup_steps=2, total_steps=6, min_lr=0.2)
    values = _lrs_over(scheduler, 9)
    assert values[6:] == pytest.approx([0.2] * 4)


def test_resumed_schedule_continues_from_its_state() -> None:
    first = warmup_cosine_schedule(_optimizer(1.0), warmup_steps=3, total_steps=10, min_lr=0.0)
    values = _lrs_over(first, 5)
    # as Lightning resumes: build both, then restore the optimizer and the scheduler state
    optimizer = _optimizer(1.0)
    resumed = warmup_cosine_schedule(optimizer, warmup_steps=3, total_steps=10, min_lr=0.0)
    optimizer.load_state_dict(first.optimizer.state_dict())
    resumed.load_state_dict(first.state_dict())
    assert optimizer.param_groups[0]["lr"] == pytest.approx(values[-1])
    uninterrupted = warmup_cosine_schedule(
        _optimizer(1.0), warmup_steps=3, total_steps=10, min_lr=0.0
    )
    assert _lrs_over(resumed, 5)[1:] == pytest.approx(_lrs_over(uninterrupted, 10)[6:])
