"""Small statistics shared by evaluations of agents and of reward models."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np


def bootstrap_ci(
    values: Sequence[float], n_boot: int = 2000, level: float = 0.95, seed: int = 0
) -> tuple[float, float, float]:
    """``(mean, low, high)``: the mean and a percentile bootstrap interval.

    Args:
        values: per-item results (episode returns, 0/1 pairwise correctness, ...).
        n_boot: number of bootstrap resamples.
        level: coverage of the interval.
        seed: seeds the resampling, so a report is reproducible.
    """
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        raise ValueError("no values to summarise")
    rng = np.random.default_rng(seed)
    # Resampled in chunks so that large data sets (1e5+ pairs) need little memory.
    chunk = max(1, 4_000_000 // x.size)
    means = np.concatenate(
        [
            x[rng.integers(0, x.size, size=(min(chunk, n_boot - at), x.size))].mean(axis=1)
            for at in range(0, n_boot, chunk)
        ]
    )
    lo, hi = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return float(x.mean()), float(lo), float(hi)


def wilson_interval(successes: float, n: int, level: float = 0.95) -> tuple[float, float, float]:
    """``(share, low, high)``: a share of ``n`` trials with the Wilson score interval.

    Unlike a bootstrap, it stays honest on few trials: one correct pair of one gives
    [0.21, 1.00], not [1.00, 1.00]. ``successes`` may be fractional (ties count one half).
    """
    if n < 1:
        raise ValueError("no trials to summarise")
    from statistics import NormalDist

    z = NormalDist().inv_cdf((1 + level) / 2)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return float(p), float(max(0.0, centre - half)), float(min(1.0, centre + half))


def cluster_bootstrap(
    groups: Sequence[np.ndarray],
    statistic: Callable[[np.ndarray], float],
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float]:
    """``(value, low, high)``: a statistic of all rows and a percentile bootstrap interval
    that resamples whole groups.

    For measures over items that come in dependent groups (all candidate pairs of one
    dialogue context): resampling rows would treat them as independent and give too
    narrow an interval.

    Args:
        groups: one array per group, rows along the first axis (same trailing shape).
        statistic: maps the rows of a sample (the groups' arrays concatenated) to a number.
        n_boot: number of bootstrap resamples.
        level: coverage of the interval.
        seed: seeds the resampling, so a report is reproducible.

    Returns:
        The statistic on all rows, and the interval's ends (NaN where a resample's
        statistic is NaN, e.g. a correlation of constant values, are left out).
    """
    if not groups:
        raise ValueError("no groups to summarise")
    value = float(statistic(np.concatenate(groups)))
    rng = np.random.default_rng(seed)
    draws = np.array(
        [
            statistic(
                np.concatenate([groups[i] for i in rng.integers(0, len(groups), len(groups))])
            )
            for _ in range(n_boot)
        ],
        dtype=float,
    )
    draws = draws[np.isfinite(draws)]
    if draws.size == 0:
        return value, float("nan"), float("nan")
    lo, hi = np.quantile(draws, [(1 - level) / 2, (1 + level) / 2])
    return value, float(lo), float(hi)


def average_ranks(x: np.ndarray) -> np.ndarray:
    """Ranks from 0, tied values sharing their mean rank (n log n: sorts once)."""
    _, inverse, counts = np.unique(np.asarray(x), return_inverse=True, return_counts=True)
    starts = np.cumsum(counts) - counts
    return (starts + (counts - 1) / 2)[inverse.reshape(-1)]


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rank correlation of two equally long arrays (ties share mean ranks);
    0.0 when either is constant."""
    ra, rb = average_ranks(a), average_ranks(b)
    if ra.std() == 0 or rb.std() == 0:
        return 0.0
    return float(np.corrcoef(ra, rb)[0, 1])
