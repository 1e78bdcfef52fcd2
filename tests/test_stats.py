"""Interval arithmetic of the synthetic study's report, checked on fixed inputs."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from hdf_lightning.evaluation.stats import crossed_interval, mean_std, seed_interval, t_quantile


@pytest.mark.parametrize(
    ("p", "df", "expected"),
    [  # Student t table values
        (0.975, 1, 12.706204736),
        (0.975, 2, 4.302652730),
        (0.975, 4, 2.776445105),
        (0.975, 30, 2.042272456),
        (0.95, 10, 1.812461123),
        (0.025, 3, -3.182446305),
        (0.975, math.inf, 1.959963985),
    ],
)
def test_t_quantile_matches_the_table(p: float, df: float, expected: float) -> None:
    assert t_quantile(p, df) == pytest.approx(expected, abs=1e-8)


def test_t_quantile_is_monotone_in_fractional_df() -> None:
    values = [t_quantile(0.975, df) for df in (2.0, 2.5, 3.0, 7.3, 100.0)]
    assert all(a > b for a, b in itertools.pairwise(values))


def test_crossed_interval_on_a_fixed_matrix() -> None:
    # 3 seeds x 4 clips, correct (1) / wrong (0)
    scores = np.array([[1, 1, 0, 1], [1, 0, 0, 1], [1, 1, 1, 1]], dtype=float)
    ci = crossed_interval(scores)
    # seed means 0.75, 0.5, 1.0: var 0.0625 -> /3; clip means 1, 2/3, 1/3, 1: var 0.1018.. -> /4
    v_seed = 0.0625 / 3
    v_clip = float(np.var([1, 2 / 3, 1 / 3, 1], ddof=1)) / 4
    df = (v_seed + v_clip) ** 2 / (v_seed**2 / 2 + v_clip**2 / 3)
    assert ci.mean == pytest.approx(0.75)
    assert ci.seed_std == pytest.approx(0.25)
    assert ci.df == pytest.approx(df)
    assert ci.half_width == pytest.approx(t_quantile(0.975, df) * math.sqrt(v_seed + v_clip))
    assert ci.low == pytest.approx(0.75 - ci.half_width)
    assert (ci.seeds, ci.clips) == (3, 4)
    assert crossed_interval(scores, level=0.5).half_width < ci.half_width


def test_paired_differences_cancel_what_the_variants_share() -> None:
    rng = np.random.default_rng(0)
    base = (rng.random((5, 400)) < 0.6).astype(float)
    better = base.copy()
    better[:, :40] = 1.0  # the same clips, 40 more right in every seed at most
    diff = crossed_interval(better - base)
    assert diff.mean == pytest.approx(float((1 - base[:, :40]).mean()) * 40 / 400)
    assert diff.half_width < crossed_interval(better).half_width  # pairing narrows the interval
    assert diff.low > 0


def test_constant_scores_have_a_zero_width_interval() -> None:
    ci = crossed_interval(np.ones((3, 10)))
    assert (ci.mean, ci.half_width, ci.df) == (1.0, 0.0, math.inf)


def test_seed_interval_and_mean_std() -> None:
    ci = seed_interval([0.5, 0.6, 0.7])
    assert ci.mean == pytest.approx(0.6)
    assert ci.half_width == pytest.approx(4.302652730 * 0.1 / math.sqrt(3))
    assert (ci.df, ci.clips) == (2.0, 0)
    assert mean_std([2.0]) == (2.0, 0.0)
    assert mean_std([1.0, 3.0]) == (2.0, pytest.approx(math.sqrt(2.0)))


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: crossed_interval(np.ones((1, 5))), "S >= 2 and N >= 2"),
        (lambda: crossed_interval(np.ones(5)), "S >= 2 and N >= 2"),
        (lambda: seed_interval([0.5]), "at least 2 seeds"),
        (lambda: t_quantile(1.0, 3), "p must be in"),
        (lambda: t_quantile(0.5, 0), "df must be > 0"),
        (lambda: crossed_interval(np.ones((2, 2)), level=1.0), "level must be in"),
        (lambda: mean_std([]), "at least one value"),
    ],
)
def test_bad_inputs_are_refused(call: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        call()  # type: ignore[operator]
