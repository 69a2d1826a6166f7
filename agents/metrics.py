"""Metrics for comparing agents over training seeds and held-out scenarios.

Scores come as arrays of shape ``(runs, scenarios)``: one row per training seed, one
column per held-out scenario (a scenario plays the part of a "task" in ``rliable``,
Agarwal et al. 2021), each entry averaged over that scenario's tries. Success also keeps
its tries, ``(runs, scenarios, tries)``, for pass^k.

* :func:`mean_ci`: the mean with a 95% bootstrap interval that resamples both seeds and
  scenarios, so it reflects both kinds of luck.
* :func:`iqm` and :func:`iqm_ci`: the interquartile mean and its stratified bootstrap
  interval (runs resampled within each scenario), as ``rliable``'s ``aggregate_iqm`` and
  ``get_interval_estimates``.
* :func:`probability_of_improvement`: P(X > Y), the Mann-Whitney statistic per scenario
  averaged over scenarios, as ``rliable``'s.
* :func:`pass_hat_k`: the chance that k tries at the same scenario all succeed
  (tau-bench's pass^k, Yao et al. 2024), unbiased from n >= k tries;
* :func:`pass_at_k`: the chance that at least one of k tries succeeds (pass@k, Chen et
  al. 2021), unbiased from n >= k tries.
"""

from __future__ import annotations

from math import comb

import numpy as np

LEVEL = 0.95


def _matrix(scores, name: str = "scores") -> np.ndarray:
    x = np.asarray(scores, dtype=float)
    if x.ndim != 2 or x.size == 0:
        raise ValueError(f"{name} must be a non-empty (runs, scenarios) array, got shape {x.shape}")
    return x


def iqm(scores) -> float:
    """Interquartile mean of all entries: the mean of the middle 50% (25% trimmed from
    each end, as ``scipy.stats.trim_mean(x, 0.25, axis=None)``)."""
    x = np.sort(np.asarray(scores, dtype=float).ravel())
    if x.size == 0:
        raise ValueError("no scores")
    cut = int(0.25 * x.size)
    return float(x[cut : x.size - cut].mean())


def _quantiles(samples: np.ndarray, level: float) -> tuple[float, float]:
    lo, hi = np.quantile(samples, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def iqm_ci(
    scores, n_boot: int = 2000, level: float = LEVEL, seed: int = 0
) -> tuple[float, float, float]:
    """``(iqm, low, high)``: the IQM of a ``(runs, scenarios)`` array and its stratified
    bootstrap interval (each scenario's runs resampled with replacement). With a single
    run there is nothing to resample across runs, so scenarios are resampled instead."""
    x = _matrix(scores)
    rng = np.random.default_rng(seed)
    runs, scenarios = x.shape
    cols = np.arange(scenarios)
    samples = np.empty(n_boot)
    for b in range(n_boot):
        if runs == 1:
            samples[b] = iqm(x[0, rng.integers(0, scenarios, size=scenarios)])
            continue
        rows = rng.integers(0, runs, size=(runs, scenarios))
        samples[b] = iqm(x[rows, cols])
    return (iqm(x), *_quantiles(samples, level))


def mean_ci(
    scores, n_boot: int = 2000, level: float = LEVEL, seed: int = 0
) -> tuple[float, float, float]:
    """``(mean, low, high)`` of a ``(runs, scenarios)`` array; the bootstrap resamples runs
    and scenarios independently, so the interval covers a new seed on new scenarios."""
    x = _matrix(scores)
    rng = np.random.default_rng(seed)
    runs, scenarios = x.shape
    samples = np.empty(n_boot)
    for b in range(n_boot):
        r = rng.integers(0, runs, size=runs)
        s = rng.integers(0, scenarios, size=scenarios)
        samples[b] = x[np.ix_(r, s)].mean()
    return (float(x.mean()), *_quantiles(samples, level))


def probability_of_improvement(scores_x, scores_y) -> float:
    """P(X > Y): for each scenario, the fraction of (run of X, run of Y) pairs where X
    scores higher (ties count half), averaged over scenarios. 0.5 means no difference.

    Raises:
        ValueError: the arrays do not have the same scenarios (columns).
    """
    x, y = _matrix(scores_x, "scores_x"), _matrix(scores_y, "scores_y")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"X and Y need the same scenarios: {x.shape[1]} vs {y.shape[1]} columns")
    diff = x[:, None, :] - y[None, :, :]  # (runs_x, runs_y, scenarios)
    per_scenario = ((diff > 0).astype(float) + 0.5 * (diff == 0)).mean(axis=(0, 1))
    return float(per_scenario.mean())


def pass_hat_k(successes, k: int) -> float:
    """pass^k: the probability that ``k`` tries at a scenario, drawn without replacement
    from its ``n`` recorded tries, all succeed, averaged over runs and scenarios.

    Per scenario with ``c`` successes in ``n`` tries it is ``C(c, k) / C(n, k)``; pass^1 is
    the success rate, and pass^k falls with k unless every scenario is all or nothing.

    Args:
        successes: booleans of shape ``(..., tries)``; the last axis holds the tries at one
            scenario.
        k: tries that must all succeed, ``1 <= k <= tries``.
    """
    n, counts = _successes_per_scenario(successes, k)
    return float(np.mean([comb(int(c), k) / comb(n, k) for c in counts]))


def pass_at_k(successes, k: int) -> float:
    """pass@k: the probability that at least one of ``k`` tries at a scenario, drawn
    without replacement from its ``n`` recorded tries, succeeds, averaged over runs and
    scenarios.

    Per scenario with ``c`` successes in ``n`` tries it is ``1 - C(n - c, k) / C(n, k)``;
    pass@1 is the success rate (= pass^1), and pass@k rises with k.

    Args:
        successes: booleans of shape ``(..., tries)``; the last axis holds the tries at one
            scenario.
        k: tries, ``1 <= k <= tries``.
    """
    n, counts = _successes_per_scenario(successes, k)
    return float(np.mean([1 - comb(n - int(c), k) / comb(n, k) for c in counts]))


def _successes_per_scenario(successes, k: int) -> tuple[int, np.ndarray]:
    """Tries per scenario and each scenario's successes, with ``k`` checked against them."""
    s = np.asarray(successes, dtype=bool)
    if s.ndim < 1 or s.shape[-1] == 0:
        raise ValueError(f"successes needs a last axis of tries, got shape {s.shape}")
    n = s.shape[-1]
    if not 1 <= k <= n:
        raise ValueError(f"k must be between 1 and the number of tries ({n}), got {k}")
    return n, s.sum(axis=-1).ravel()
