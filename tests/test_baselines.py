"""The scripted expert solves the tasks of every registered env; random choice does not."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import rlhf_envs
from rlhf_agents.baselines import ExpertAgent, RandomAgent
from rlhf_agents.evaluation import bootstrap_ci, evaluate

SELECT_IDS = sorted(i for i, kw in rlhf_envs.ENV_PRESETS.items() if kw["interface"] == "select")
# Tokens and text ids: the same tasks through another interface (fewer episodes: a
# tokens episode is ~150 steps).
OTHER_IDS = sorted(set(rlhf_envs.ENV_PRESETS) - set(SELECT_IDS))


def _expert_and_random(env_id: str, episodes: int) -> None:
    """The expert succeeds on at least 95% of the episodes and earns a clearly positive
    gold return; uniform random choice succeeds on at most 30% and loses gold."""
    expert = evaluate(ExpertAgent(), env_id, range(episodes))
    assert expert.values("success").mean() >= 0.95
    assert expert.values("gold").mean() > 2
    random = evaluate(RandomAgent(seed=0), env_id, range(episodes))
    assert random.values("success").mean() <= 0.30
    assert random.values("gold").mean() < 0


@pytest.mark.integration
@pytest.mark.parametrize("env_id", SELECT_IDS)
def test_expert_succeeds_and_random_fails_on_100_episodes(env_id):
    _expert_and_random(env_id, 100)


@pytest.mark.slow
@pytest.mark.parametrize("env_id", SELECT_IDS)
def test_expert_succeeds_and_random_fails_on_500_episodes(env_id):
    _expert_and_random(env_id, 500)


@pytest.mark.integration
@pytest.mark.parametrize("env_id", OTHER_IDS)
def test_expert_succeeds_through_the_tokens_and_text_interfaces(env_id):
    # The test LM's small vocabulary spends more tokens per reply than the default
    # build's, so the reply cap is raised to fit the expert's longest replies.
    kwargs = (
        {"max_reply_tokens": 100} if rlhf_envs.ENV_PRESETS[env_id]["interface"] == "tokens" else {}
    )
    ev = evaluate(ExpertAgent(), env_id, range(20), kwargs)
    assert ev.values("success").mean() >= 0.95


def test_every_registered_id_is_covered():
    registered = {i for i in gym.registry if i.startswith("RLHF-")}
    assert registered == set(SELECT_IDS) | set(OTHER_IDS)


def test_agents_play_the_same_scenarios_for_the_same_seeds():
    a = evaluate(ExpertAgent(), "RLHF-Chat-v0", [11, 12])
    b = evaluate(RandomAgent(seed=5), "RLHF-Chat-v0", [11, 12])
    for x, y in zip(a.episodes, b.episodes, strict=True):
        assert x.transcript.splitlines()[0] == y.transcript.splitlines()[0]


def test_bootstrap_interval_contains_the_mean_and_narrows_with_more_data():
    rng = np.random.default_rng(0)
    small = bootstrap_ci(rng.normal(1.0, 1.0, 20))
    large = bootstrap_ci(rng.normal(1.0, 1.0, 2000))
    assert small[1] < small[0] < small[2]
    assert (large[2] - large[1]) < (small[2] - small[1])
    assert large[1] < 1.0 < large[2]


@pytest.mark.lm
def test_random_agent_writes_random_replies_on_the_text_interface():
    env = gym.make("RLHF-ChatText-v0")
    obs, _ = env.reset(seed=0)
    agent, again = RandomAgent(seed=3), RandomAgent(seed=3)
    replies = [agent.act(obs, env) for _ in range(20)]
    assert replies == [again.act(obs, env) for _ in range(20)]
    assert len(set(replies)) == 20
    for reply in replies:
        assert 1 <= len(reply) <= 80 and reply.strip()
        assert env.action_space.contains(reply)
    env.step(replies[0])  # the env accepts it
