"""The scripted expert solves the tasks; random choice does not."""

from __future__ import annotations

import numpy as np

import rlhf_envs  # noqa: F401
from agents.baselines import ExpertAgent, RandomAgent
from agents.evaluation import bootstrap_ci, evaluate


def test_expert_succeeds_on_at_least_95_percent_of_500_episodes():
    ev = evaluate(ExpertAgent(), "RLHF-Chat-v0", range(500))
    assert ev.values("success").mean() >= 0.95
    assert ev.values("gold").mean() > 5


def test_random_succeeds_on_at_most_30_percent_of_500_episodes():
    ev = evaluate(RandomAgent(seed=0), "RLHF-Chat-v0", range(500))
    assert ev.values("success").mean() <= 0.30
    assert ev.values("gold").mean() < 0


def test_agents_play_the_same_scenarios_for_the_same_seeds():
    a = evaluate(ExpertAgent(), "RLHF-Chat-v0", [11, 12])
    b = evaluate(RandomAgent(seed=5), "RLHF-Chat-v0", [11, 12])
    for x, y in zip(a.episodes, b.episodes):
        assert x.transcript.splitlines()[0] == y.transcript.splitlines()[0]


def test_bootstrap_interval_contains_the_mean_and_narrows_with_more_data():
    rng = np.random.default_rng(0)
    small = bootstrap_ci(rng.normal(1.0, 1.0, 20))
    large = bootstrap_ci(rng.normal(1.0, 1.0, 2000))
    assert small[1] < small[0] < small[2]
    assert (large[2] - large[1]) < (small[2] - small[1])
    assert large[1] < 1.0 < large[2]
