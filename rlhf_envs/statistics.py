"""Small statistics shared by evaluations of agents and of reward models."""

from __future__ import annotations

from collections.abc import Sequence

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
