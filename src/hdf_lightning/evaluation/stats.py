"""Confidence intervals for accuracies measured over several training seeds on one test set.

A study trains each variant with ``S`` seeds and tests every run on the same ``N`` clips. Its
accuracy then varies for two reasons: the training seed, and which clips happened to be drawn for
the test set. :func:`crossed_interval` combines both. Its input is an ``(S, N)`` matrix of per-clip
scores (1/0 for correct/wrong; for a paired difference of two variants trained with the same seeds,
their difference, in {-1, 0, 1}). The estimate is the grand mean, and its variance
``var(seed means) / S + var(clip means) / N`` is that of a crossed seeds × clips design. The
interaction term is counted in both parts, so the interval errs on the wide side. It is a Student
t interval with Welch-Satterthwaite degrees of freedom. :func:`seed_interval` uses the seeds alone,
for runs whose test sets differ.

Student's t quantile is computed here (regularised incomplete beta by continued fraction), so no
scientific library is needed.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "Interval",
    "crossed_interval",
    "mean_std",
    "seed_interval",
    "t_quantile",
]


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    if not values:
        raise ValueError("mean_std needs at least one value")
    mean = statistics.fmean(values)
    return mean, statistics.stdev(values) if len(values) > 1 else 0.0


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the regularised incomplete beta function (modified Lentz)."""
    tiny, eps = 1e-300, 1e-15
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 10_000):
        m2 = 2 * m
        for numerator in (
            m * (b - m) * x / ((qam + m2) * (a + m2)),
            -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2)),
        ):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < eps:
            return h
    raise ArithmeticError(f"incomplete beta did not converge for a={a}, b={b}, x={x}")


def _incomplete_beta(a: float, b: float, x: float) -> float:
    """Regularised incomplete beta ``I_x(a, b)`` for ``0 <= x <= 1``."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _betacf(a, b, x) / a
    return 1.0 - math.exp(log_front) * _betacf(b, a, 1.0 - x) / b


def _t_cdf(t: float, df: float) -> float:
    tail = 0.5 * _incomplete_beta(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t >= 0 else tail


def t_quantile(p: float, df: float) -> float:
    """The ``p`` quantile of Student's t with ``df`` (> 0, may be fractional or ``inf``) degrees
    of freedom, to about 1e-10."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must be in (0, 1), got {p}")
    if not df > 0:
        raise ValueError(f"df must be > 0, got {df}")
    if math.isinf(df) or df > 1e7:
        return statistics.NormalDist().inv_cdf(p)
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    low, high = 0.0, 1.0
    while _t_cdf(high, df) < p:
        low, high = high, 2.0 * high
    for _ in range(200):
        mid = 0.5 * (low + high)
        if _t_cdf(mid, df) < p:
            low = mid
        else:
            high = mid
        if high - low < 1e-12 * max(1.0, high):
            break
    return 0.5 * (low + high)


@dataclass(frozen=True)
class Interval:
    """A mean with its confidence interval.

    Attributes:
        mean: the estimate (grand mean).
        half_width: the interval is ``mean ± half_width``.
        df: the degrees of freedom of the t quantile used.
        seed_std: sample std of the per-seed means (0 for one seed).
        seeds: number of seeds (rows).
        clips: number of test clips (columns; 0 for :func:`seed_interval`).
        level: the confidence level.
    """

    mean: float
    half_width: float
    df: float
    seed_std: float
    seeds: int
    clips: int
    level: float = 0.95

    @property
    def low(self) -> float:
        return self.mean - self.half_width

    @property
    def high(self) -> float:
        return self.mean + self.half_width


def _check_level(level: float) -> float:
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    return 0.5 + level / 2.0


def crossed_interval(scores: np.ndarray, level: float = 0.95) -> Interval:
    """The mean of an ``(S seeds, N clips)`` score matrix with an interval over seeds and clips.

    ``variance = var(row means) / S + var(column means) / N`` (sample variances), with
    Welch-Satterthwaite degrees of freedom ``(v1 + v2)^2 / (v1^2 / (S - 1) + v2^2 / (N - 1))``.

    Raises:
        ValueError: when ``scores`` is not 2-D with at least 2 seeds and 2 clips.
    """
    quantile = _check_level(level)
    matrix = np.asarray(scores, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[0] < 2 or matrix.shape[1] < 2:
        raise ValueError(
            f"crossed_interval expects an (S seeds, N clips) matrix with S >= 2 and N >= 2, "
            f"got shape {matrix.shape}"
        )
    seeds, clips = matrix.shape
    seed_means, clip_means = matrix.mean(axis=1), matrix.mean(axis=0)
    v_seed = float(seed_means.var(ddof=1)) / seeds
    v_clip = float(clip_means.var(ddof=1)) / clips
    total = v_seed + v_clip
    if total == 0.0:
        df = math.inf
    else:
        df = total**2 / (v_seed**2 / (seeds - 1) + v_clip**2 / (clips - 1))
    return Interval(
        mean=float(matrix.mean()),
        half_width=t_quantile(quantile, df) * math.sqrt(total),
        df=df,
        seed_std=float(seed_means.std(ddof=1)),
        seeds=seeds,
        clips=clips,
        level=level,
    )


def seed_interval(values: Sequence[float], level: float = 0.95) -> Interval:
    """The mean of per-seed values with a t interval over seeds alone (``S - 1`` df).

    Raises:
        ValueError: for fewer than 2 values.
    """
    quantile = _check_level(level)
    if len(values) < 2:
        raise ValueError(f"seed_interval needs at least 2 seeds, got {len(values)}")
    mean, std = mean_std(values)
    df = float(len(values) - 1)
    return Interval(
        mean=mean,
        half_width=t_quantile(quantile, df) * std / math.sqrt(len(values)),
        df=df,
        seed_std=std,
        seeds=len(values),
        clips=0,
        level=level,
    )
