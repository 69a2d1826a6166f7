"""Comparison metrics: hand-computed cases and agreement with rliable."""

from __future__ import annotations

import numpy as np
import pytest

from rlhf_agents import metrics


def test_pass_hat_k_on_a_hand_made_table():
    # 3 scenarios x 4 tries: always, half the time, never.
    successes = np.array([[1, 1, 1, 1], [1, 0, 1, 0], [0, 0, 0, 0]], dtype=bool)
    # Scenario 2 of 4 tries: pass^1 = 2/4, pass^2 = C(2,2)/C(4,2) = 1/6, pass^3 = pass^4 = 0.
    assert metrics.pass_hat_k(successes, 1) == pytest.approx((1 + 0.5 + 0) / 3)
    assert metrics.pass_hat_k(successes, 2) == pytest.approx((1 + 1 / 6 + 0) / 3)
    assert metrics.pass_hat_k(successes, 3) == pytest.approx(1 / 3)
    assert metrics.pass_hat_k(successes, 4) == pytest.approx(1 / 3)
    # Extra leading axes (runs) are averaged over like scenarios.
    assert metrics.pass_hat_k(np.stack([successes, ~successes]), 1) == pytest.approx(0.5)


def test_pass_at_k_on_a_hand_made_table_and_by_drawing():
    successes = np.array([[1, 1, 1, 1], [1, 0, 1, 0], [0, 0, 0, 0]], dtype=bool)
    # Scenario 2: pass@1 = 1/2, pass@2 = 1 - C(2,2)/C(4,2) = 5/6, pass@3 = pass@4 = 1.
    assert metrics.pass_at_k(successes, 1) == pytest.approx(metrics.pass_hat_k(successes, 1))
    assert metrics.pass_at_k(successes, 2) == pytest.approx((1 + 5 / 6 + 0) / 3)
    assert metrics.pass_at_k(successes, 3) == pytest.approx(2 / 3)
    rng = np.random.default_rng(1)
    row = np.array([0, 0, 1, 0, 0, 1], dtype=bool)
    draws = [row[rng.choice(6, size=2, replace=False)].any() for _ in range(40_000)]
    assert metrics.pass_at_k(row, 2) == pytest.approx(np.mean(draws), abs=0.01)  # 1 - 6/15
    with pytest.raises(ValueError, match="k must be between 1 and the number of tries"):
        metrics.pass_at_k(successes, 5)


def test_pass_hat_k_matches_drawing_tries_without_replacement():
    rng = np.random.default_rng(0)
    row = np.array([1, 1, 1, 0, 1, 0], dtype=bool)
    draws = [row[rng.choice(6, size=3, replace=False)].all() for _ in range(40_000)]
    assert metrics.pass_hat_k(row, 3) == pytest.approx(
        np.mean(draws), abs=0.01
    )  # C(4,3)/C(6,3) = 0.2


@pytest.mark.parametrize("k", [0, 5])
def test_pass_hat_k_rejects_k_outside_the_tries(k):
    with pytest.raises(ValueError, match="between 1 and the number of tries"):
        metrics.pass_hat_k(np.ones((2, 4), dtype=bool), k)


def test_iqm_and_probability_of_improvement_by_hand():
    x = np.array([[0.0, 1.0, 2.0, 3.0], [4.0, 5.0, 6.0, 100.0]])  # 8 entries: drop 2 each end
    assert metrics.iqm(x) == pytest.approx((2 + 3 + 4 + 5) / 4)
    y = np.array([[1.0, 1.0, 2.0, 3.0]])
    # Scenario 0: x runs 0, 4 vs 1 -> (0 + 1) / 2; scenarios 1-3: a tie and a win -> (0.5 + 1) / 2.
    assert metrics.probability_of_improvement(x, y) == pytest.approx((0.5 + 0.75 + 0.75 + 0.75) / 4)
    assert metrics.probability_of_improvement(y, y) == 0.5


def test_mean_ci_covers_the_mean_and_narrows_with_more_data():
    rng = np.random.default_rng(1)
    small = rng.normal(size=(3, 20))
    big = rng.normal(size=(3, 400))
    m, lo, hi = metrics.mean_ci(small)
    assert lo < m < hi and m == pytest.approx(small.mean())
    _, lo_big, hi_big = metrics.mean_ci(big)
    assert hi_big - lo_big < hi - lo


def test_metrics_match_rliable():
    # rliable.metrics only (rliable.library imports arch, which does not load with pandas 3).
    rliable_metrics = pytest.importorskip("rliable.metrics")
    rng = np.random.default_rng(2)
    x, y = rng.normal(1.0, 1.0, size=(5, 30)), rng.normal(0.5, 1.0, size=(5, 30))
    assert metrics.iqm(x) == pytest.approx(rliable_metrics.aggregate_iqm(x))
    assert metrics.probability_of_improvement(x, y) == pytest.approx(
        rliable_metrics.probability_of_improvement(x, y)
    )


def test_iqm_interval_is_a_stratified_bootstrap():
    from scipy.stats import trim_mean

    rng = np.random.default_rng(3)
    x = rng.normal(size=(4, 25))
    # The same procedure written out: each scenario's runs resampled with replacement.
    boot = np.random.default_rng(7)
    samples = []
    for _ in range(2000):
        cols = [x[boot.integers(0, 4, size=4), j] for j in range(25)]
        samples.append(trim_mean(np.stack(cols, axis=1), 0.25, axis=None))
    expected = np.quantile(samples, [0.025, 0.975])
    point, lo, hi = metrics.iqm_ci(x)
    assert point == pytest.approx(trim_mean(x, 0.25, axis=None))
    assert lo == pytest.approx(expected[0], abs=0.05) and hi == pytest.approx(expected[1], abs=0.05)


def test_iqm_interval_with_one_run_resamples_scenarios():
    x = np.random.default_rng(4).normal(size=(1, 50))
    point, lo, hi = metrics.iqm_ci(x)
    assert lo < point < hi
